// Ticket pages: reload when a ticket changes (this page's ticket, or any for the list), at most
// every 2 s. The socket carries only {"type": "ticket", "id": N}, never what anyone wrote.
"use strict";
(() => {
  let timer = null, delay = 1000;
  const head = document.getElementById("ticket-head");
  const mine = head ? head.dataset.ticket : null;
  const connect = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/tickets/ws`);
    ws.onopen = () => { document.getElementById("live").hidden = false; delay = 1000; };
    ws.onmessage = (event) => {
      const change = JSON.parse(event.data);
      if (change.type !== "ticket" || (mine && change.id !== mine) || timer) return;
      const reload = () => {
        // Not while someone is choosing filters: try again when they are done.
        if (document.activeElement && document.activeElement.closest("form")) timer = setTimeout(reload, 2000);
        else location.reload();
      };
      timer = setTimeout(reload, 2000);
    };
    ws.onclose = () => {
      document.getElementById("live").hidden = true;
      if (!connect.stopped) setTimeout(connect, (delay = Math.min(delay * 2, 10000)));
    };
    window.addEventListener("pagehide", () => { connect.stopped = true; ws.close(); }, { once: true });
  };
  connect();
})();
