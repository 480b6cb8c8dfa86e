// Ticket pages: reload when the bot says something anywhere (a ticket changed), at most every 2 s.
"use strict";
(() => {
  let timer = null, delay = 1000;
  const connect = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/sim/ws`);
    ws.onopen = () => { document.getElementById("live").hidden = false; delay = 1000; };
    ws.onmessage = (event) => {
      if (JSON.parse(event.data).sender !== "bot" || timer) return;
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
