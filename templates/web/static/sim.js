// The simulator page: one chat at a time, live messages by WebSocket, unread counts, buttons.
// Every word shown comes from BOOT (the language file of templates/web/lang), none from here.
"use strict";
(() => {
  const T = BOOT.js;
  const me = BOOT.me;
  const $ = (id) => document.getElementById(id);
  const app = $("app"), list = $("messages"), composer = $("composer"), input = $("text");
  const zone = "Asia/Shanghai";
  const timeFmt = new Intl.DateTimeFormat(T.lang, { timeZone: zone, hour: "2-digit", minute: "2-digit", hour12: false });
  const dayFmt = new Intl.DateTimeFormat(T.lang, { timeZone: zone, month: "short", day: "numeric" });
  const fullFmt = new Intl.DateTimeFormat(T.lang, { timeZone: zone, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
  let chat = null, shown = new Set(), lastAt = 0, replyTo = null, oldest = null;

  const fmtShort = (at) => {
    const d = new Date(at * 1000);
    return dayFmt.format(d) === dayFmt.format(new Date()) ? timeFmt.format(d) : dayFmt.format(d);
  };
  const fmtDivider = (at) => {
    const d = new Date(at * 1000);
    return dayFmt.format(d) === dayFmt.format(new Date()) ? timeFmt.format(d) : fullFmt.format(d);
  };
  const hue = (s) => { let h = 0; for (const c of s) h = (h * 31 + c.codePointAt(0)) % 360; return h; };
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  // Text with ticket numbers (#42): a link to the ticket page only once the server says the
  // ticket exists and this person may see it (refs); until then, and otherwise, plain text.
  const refs = new Map();  // ticket id -> true (may open) | false
  let asking = null;
  const linked = (parent, text) => {
    const parts = text.split(/(#\d+)/);
    for (const part of parts) {
      if (/^#\d+$/.test(part)) {
        const ref = el("span", "ticket-ref-text", part);
        ref.dataset.ticket = part.slice(1);
        parent.append(ref);
      } else if (part) parent.append(document.createTextNode(part));
    }
    return parent;
  };
  function upgrade(node) {
    const id = node.dataset.ticket;
    if (refs.get(id) !== true) return;
    if (node.classList.contains("ticket-ref-text")) {
      const a = el("a", "ticket-ref", node.textContent);
      a.href = "/tickets/" + id; a.target = "_blank";
      node.replaceWith(a);
    } else node.hidden = false;  // the "ticket details" link of a message
  }
  function resolveRefs() {
    if (asking) return;
    asking = Promise.resolve().then(async () => {
      const nodes = [...list.querySelectorAll("[data-ticket]")];
      const unknown = [...new Set(nodes.map((n) => n.dataset.ticket))].filter((id) => !refs.has(id));
      if (unknown.length) {
        try {
          const res = await fetch(`/sim/api/refs?as=${encodeURIComponent(me.id)}&ids=${unknown.join(",")}`);
          const data = await res.json();
          unknown.forEach((id) => refs.set(id, data.visible.includes(id)));
        } catch (e) { asking = null; return; }  // offline: they stay plain text
      }
      asking = null;
      const shownRefs = [...list.querySelectorAll("[data-ticket]")];
      shownRefs.forEach(upgrade);
      if (shownRefs.some((n) => !refs.has(n.dataset.ticket))) resolveRefs();  // came meanwhile
    });
  }
  const toast = (text) => {
    const t = $("toast");
    t.textContent = text; t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
  };
  const api = async (path, body) => {
    const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(T.errors[data.error] || data.detail || res.statusText);
    return data;
  };

  // A card edited by the bot (its ticket moved on) replaces the one shown, in place.
  function replace(m) {
    const old = list.querySelector(`.msg[data-id="${m.id}"]`);
    if (!old) return;
    const frag = document.createDocumentFragment();
    shown.delete(m.id);
    render(m, false, frag);
    old.replaceWith(frag);
  }

  function render(m, prepend, into) {
    if (shown.has(m.id)) return;
    shown.add(m.id);
    const frag = into || document.createDocumentFragment();
    const ref = prepend ? list.firstChild : null;
    if (!into && !prepend && (!lastAt || m.at - lastAt > 300)) frag.append(el("div", "divider", fmtDivider(m.at)));
    if (!into && !prepend) lastAt = m.at;
    const bot = m.sender === "bot", mine = m.sender === me.account;
    const row = el("div", "msg" + (mine ? " mine" : "") + (bot ? " bot" : ""));
    row.dataset.id = m.id;
    const avatar = el("span", "avatar" + (bot ? " tier-private" : ""), bot ? T.bot.slice(0, 1) : (m.name || "?").slice(0, 1));
    if (!bot) avatar.style.background = mine ? "#5b8def" : `hsl(${hue(m.sender)} 45% 58%)`;
    const body = el("div", "msg-body");
    if (!mine) body.append(el("span", "msg-name", bot ? T.bot : m.name));
    const ticket = (m.text.match(/#(\d+)/) || [])[1];
    if (bot && m.buttons.length) {
      const lines = m.text.split("\n");
      const card = el("div", "card");
      if (/[🚨⚠]/u.test(lines[0])) card.classList.add("urgent");
      if (m.buttons.every(([, d]) => /^(confirm|reopen|rate):/.test(d))) card.classList.add("resident");
      const head = linked(el("div", "card-head"), lines[0]);
      const text = linked(el("div", "card-text"), lines.slice(1).join("\n"));
      const buttons = el("div", "card-buttons");
      for (const [label, data] of m.buttons) {
        const b = el("button", "", label);
        b.type = "button";
        b.dataset.data = data;
        b.addEventListener("click", () => press(m, data, b));
        buttons.append(b);
      }
      card.append(head);
      if (lines.length > 1) card.append(text);
      card.append(buttons);
      body.append(card);
    } else {
      body.append(linked(el("div", "bubble"), m.text));
    }
    if (m.quote) body.append(el("div", "quote", `${m.quote.sender === "bot" ? T.bot : m.quote.name}：${m.quote.text}`));
    const tools = el("div", "msg-tools");
    const reply = el("button", "reply", T.reply);
    reply.type = "button";
    reply.addEventListener("click", () => startReply(m));
    tools.append(reply);
    if (ticket) {
      const a = el("a", "details", T.details + " #" + ticket);
      a.href = "/tickets/" + ticket; a.target = "_blank";
      a.dataset.ticket = ticket; a.hidden = true;  // shown once the ticket is known visible
      tools.append(a);
    }
    body.append(tools);
    row.append(avatar, body);
    frag.append(row);
    resolveRefs();
    if (into) return;
    if (ref) list.insertBefore(frag, ref); else list.append(frag);
  }

  const atBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const toBottom = () => { list.scrollTop = list.scrollHeight; };

  function startReply(m) {
    replyTo = m.id;
    $("quote-text").textContent = T.replying.replace("{name}", m.sender === "bot" ? T.bot : m.name) + m.text.split("\n")[0];
    $("quotebar").hidden = false;
    input.focus();
  }
  function cancelReply() { replyTo = null; $("quotebar").hidden = true; }

  function roomOf(c) { return document.querySelector(`.room[data-chat="${CSS.escape(c)}"]`); }
  function setBadge(room, n) {
    const b = room.querySelector(".badge");
    b.dataset.unread = n;
    b.textContent = n > 99 ? "99+" : String(n);
    b.hidden = n === 0;
  }
  function preview(m) {
    const room = roomOf(m.chat);
    if (!room) return;
    if (!room.dataset.own) {  // the most recent chat moves up, below the person's own group
      const recent = document.querySelector('.room-group[data-kind="recent"]');
      if (recent && room.parentElement === recent && recent.querySelector(".room") !== room) {
        recent.insertBefore(room, recent.querySelector(".room"));
      }
    }
    room.querySelector(".room-last").textContent = (m.sender === "bot" ? "" : m.name + "：") + m.text.split("\n")[0];
    const t = room.querySelector(".room-time");
    t.dataset.at = m.at; t.textContent = fmtShort(m.at);
  }

  async function openChat(c, push) {
    const room = roomOf(c);
    if (!room) return;
    chat = c; shown = new Set(); lastAt = 0; oldest = null; cancelReply();
    document.querySelectorAll(".room.active").forEach((r) => r.classList.remove("active"));
    room.classList.add("active");
    setBadge(room, 0);
    $("chat-title").textContent = room.dataset.name;
    $("chat-kind").textContent = "";
    app.dataset.view = "chat";
    composer.hidden = false;
    list.replaceChildren();
    delete list.dataset.chat;  // set again once the chat's messages are in
    if (push) history.pushState({ chat: c }, "", `/sim?as=${encodeURIComponent(me.id)}&chat=${encodeURIComponent(c)}`);
    const res = await fetch(`/sim/api/messages?as=${encodeURIComponent(me.id)}&chat=${encodeURIComponent(c)}`);
    const data = await res.json();
    if (chat !== c) return;
    if (!data.messages.length) list.append(el("p", "placeholder empty", BOOT.empty));
    data.messages.forEach((m) => render(m));
    oldest = data.messages.length ? data.messages[0].id : null;
    list.dataset.chat = c;
    toBottom();
  }

  function showList(push) {
    chat = null;
    app.dataset.view = "list";
    document.querySelectorAll(".room.active").forEach((r) => r.classList.remove("active"));
    if (push) history.pushState({}, "", `/sim?as=${encodeURIComponent(me.id)}`);
  }

  async function send(text) {
    const body = { as: me.id, chat, text };
    if (replyTo !== null) body.reply_to = String(replyTo);
    $("send").disabled = true;
    try {
      const data = await api("/sim/api/send", body);
      list.querySelector(".placeholder.empty")?.remove();
      render(data.message);
      preview(data.message);
      toBottom();
      input.value = "";
      grow();
      cancelReply();
    } catch (e) {
      toast(T.failed + e.message);
    } finally {
      $("send").disabled = false;
      input.focus();
    }
  }

  async function press(m, data, button) {
    button.disabled = true;
    try {
      const answer = await api("/sim/api/press", { as: me.id, chat: m.chat, message_id: String(m.id), data });
      if (answer.status === "asked") {  // 办结 asks its presser for the result first
        const result = window.prompt(answer.notice || "", "");
        await send(result && result.trim() ? result.trim() : T.cancel_word);
      } else if (answer.notice) toast(answer.notice);  // a refusal: for the presser alone
    } catch (e) {
      toast(e.message);
    } finally {
      setTimeout(() => { button.disabled = false; }, 800);
    }
  }

  function connect(delay) {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/sim/ws?as=${encodeURIComponent(me.id)}`);
    ws.onopen = () => { delay = 500; document.body.dataset.live = "on"; };
    ws.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.edited) { if (m.chat === chat) replace(m); return; }  // not a new message
      preview(m);
      if (m.chat === chat) {
        const stick = atBottom() || m.sender === me.account;
        list.querySelector(".placeholder.empty")?.remove();
        render(m);
        if (stick) toBottom();
        if (document.visibilityState === "visible") {
          api("/sim/api/read", { as: me.id, chat, upto: m.id }).catch(() => {});
        }
      } else if (m.sender !== me.account) {
        const room = roomOf(m.chat);
        if (room) setBadge(room, Number(room.querySelector(".badge").dataset.unread || 0) + 1);
      }
    };
    ws.onclose = () => {
      document.body.dataset.live = "off";
      if (connect.stopped) return;
      toast(T.offline);
      setTimeout(() => connect(Math.min(delay * 2, 8000)), delay);
    };
    window.addEventListener("pagehide", () => { connect.stopped = true; ws.close(); }, { once: true });
  }

  // A counter appears near the limit (the last 10%), so a long message is not cut by surprise.
  const MAX = input.maxLength > 0 ? input.maxLength : 4096;
  function grow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
    const n = input.value.length, counter = $("counter");
    counter.hidden = n < MAX * 0.9;
    counter.textContent = T.counter.replace("{n}", n).replace("{max}", MAX);
    counter.classList.toggle("over", n >= MAX);
  }

  document.querySelectorAll(".room").forEach((room) => {
    room.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      openChat(room.dataset.chat, true);
    });
  });
  document.querySelectorAll(".room-time").forEach((t) => { if (t.dataset.at) t.textContent = fmtShort(Number(t.dataset.at)); });
  $("as").addEventListener("change", (event) => {
    const q = new URLSearchParams({ as: event.target.value });
    if (chat) q.set("chat", chat);
    location.href = "/sim?" + q.toString();
  });
  $("back").addEventListener("click", (event) => { event.preventDefault(); showList(true); });
  $("quote-cancel").addEventListener("click", cancelReply);
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim() && chat) send(input.value);
  });
  // Enter sends on a desktop (Shift+Enter: a new line); on a touch screen Enter is a new line
  // and the send button sends, as in the chat apps people know.
  const touch = window.matchMedia("(pointer: coarse)").matches;
  input.enterKeyHint = touch ? "enter" : "send";
  if (touch) input.placeholder = T.type_here_touch;  // not "Enter sends": it does not here
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !touch) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  input.addEventListener("input", grow);
  list.addEventListener("scroll", async () => {
    if (list.scrollTop > 40 || !chat || oldest === null || oldest <= 1 || list.dataset.loading) return;
    list.dataset.loading = "1";
    const c = chat, height = list.scrollHeight;
    const res = await fetch(`/sim/api/messages?as=${encodeURIComponent(me.id)}&chat=${encodeURIComponent(c)}&before=${oldest}`);
    const data = await res.json();
    if (chat === c && data.messages.length) {
      data.messages.slice().reverse().forEach((m) => render(m, true));
      oldest = data.messages[0].id;
      list.scrollTop = list.scrollHeight - height;
    } else oldest = null;
    delete list.dataset.loading;
  });
  window.addEventListener("popstate", () => {
    const c = new URLSearchParams(location.search).get("chat");
    if (c) openChat(c, false); else showList(false);
  });

  connect(500);
  if (BOOT.chat) openChat(BOOT.chat, false);
  else if (window.matchMedia("(min-width: 721px)").matches) {
    const first = document.querySelector(".room");
    if (first) openChat(first.dataset.chat, false);
  }
})();
