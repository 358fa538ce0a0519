/* authbridge browser client: window.authbridge. No build step, no dependencies; ES2020.
 *
 * Load it synchronously in <head>, right after the JSON bootstrap that auth_bootstrap() renders
 * (<script id="authbridge-state" type="application/json">), so the page's auth state is known
 * before the body is parsed: no loading flash, and in per_tab mode a page rendered for another
 * tab's slot is hidden and re-requested before it is ever painted.
 *
 * authbridge.fetch(url, init) is fetch with "Authorization: Bearer <jwt>" added, but only for
 * this page's origin, the server's AUTHBRIDGE_ALLOWED_ORIGINS (from the bootstrap) and the
 * origins the page adds to authbridge.trustedOrigins; any other URL is fetched untouched.
 *
 * The file, top to bottom:
 *   names     every storage key, cookie, header and channel name, and every timing, once
 *   core      bootstrap, state and onChange, reloads, cross-document messages, HTTP and tokens
 *             (getToken, fetch, signIn, signOut): the same in both modes
 *   shared    sharedMode(): one session per browser
 *   per_tab   perTabMode(): each tab its own session slot
 *   passkeys  the WebAuthn ceremonies
 *   wiring    the mode in force, window.authbridge, the page lifecycle events, start
 *
 * The core reaches a mode only through this interface, which both modes implement:
 *   tab()          this tab's id, or null
 *   headers()      headers that every request to this origin carries
 *   serialise(fn)  run fn (which returns a promise) for a token call, one tab at a time if needed
 *   publish()      record a change of state this tab made, where the other documents look
 *   receive(msg)   a message from another document on the BroadcastChannel
 *   start()        settle this freshly loaded document (the channel is open)
 *   leave()        the document is about to unload (beforeunload)
 *   restored()     the document came back from the back/forward cache: the state key known
 *                  now, or null when unknown
 */
(function () {
  "use strict";
  if (window.authbridge && window.authbridge.version) return;

  // -- names and timings ------------------------------------------------------------------------

  // Shared with the server: these names are part of the wire format.
  const STATE_ELEMENT_ID = "authbridge-state";  // the bootstrap's <script type="application/json">
  const TAB_HEADER = "X-Authbridge-Tab";         // per_tab: the tab id on requests to the server
  const TAB_FIELD = "authbridge_tab";            // per_tab: the tab id in posted forms
  const TAB_COOKIE = "authbridge.tab";           // per_tab: the hint cookie for navigations
  // Shared between this browser's documents.
  const CHANNEL = "authbridge";                  // BroadcastChannel, both modes
  const REFRESH_LOCK = "authbridge.refresh";     // Web Lock (shared)
  const LOCAL_RECORD = "authbridge.auth";        // localStorage (shared): last change {key, at}
  const LOCAL_LEASE = "authbridge.refreshing";   // localStorage (shared): lock fallback {by, until}
  const SESSION_SYNC = "authbridge.sync";        // sessionStorage (shared): "1" after stale reload
  const SESSION_TAB_ID = "authbridge.tabId";     // sessionStorage (per_tab): this tab's id
  const SESSION_MINE = "authbridge.mine";        // sessionStorage (per_tab): its state key
  const SESSION_FIX = "authbridge.fix";          // sessionStorage (per_tab): re-requests {n, at}
  const SESSION_LIVE = "authbridge.live";        // sessionStorage (per_tab): "1" while shown

  // Only for a page without the bootstrap (the server always sends its own margin): the largest
  // margin the server uses, so a token is renewed no later than the server would rotate it.
  const DEFAULT_REFRESH_MARGIN_MS = 60000;
  const LEASE_MS = 5000, LEASE_POLL_MS = 50; // shared, without Web Locks
  const HINT_MAX_AGE_S = 10; // per_tab: the hint cookie outlives one navigation only
  const MAX_CORRECTIONS = 2, CORRECTION_WINDOW_MS = 15000; // per_tab: re-requests in a row
  const CLASH_WAIT_MS = 250, CONFIRM_MS = 300; // per_tab: settling a duplicated tab's id
  const LEAVE_UNDO_MS = 1000; // per_tab: a cancelled navigation leaves the page shown

  // -- core: storage and bootstrap --------------------------------------------------------------

  function storage(kind) {
    try { const s = window[kind]; s.getItem("x"); return s; } catch { return null; }
  }
  const session = storage("sessionStorage"), local = storage("localStorage");
  function get(s, k) {
    try { return s ? s.getItem(k) : null; } catch { return null; }
  }
  function put(s, k, v) {
    try { if (s) s.setItem(k, v); } catch { /* quota, privacy mode */ }
  }
  function getJSON(s, k) {
    try { return JSON.parse(get(s, k) || "null"); } catch { return null; }
  }
  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    let out = "";
    for (const byte of bytes) out += (byte + 256).toString(16).slice(1);
    return out;
  }

  // The server states its settings in the bootstrap (sharing, endpoint prefix, refresh margin,
  // allowed origins). Without one the client is in shared mode, its prefix is where this script
  // was served from, and its refresh margin is DEFAULT_REFRESH_MARGIN_MS.
  function readBootstrap() {
    const el = document.getElementById(STATE_ELEMENT_ID);
    let data;
    try { data = el ? JSON.parse(el.textContent) : {}; } catch { data = {}; }
    if (!data.prefix) {
      const src = document.currentScript && document.currentScript.src;
      const m = src && /^[^?#]*?(\/[^?#]*)\/client\.js/.exec(src.replace(location.origin, ""));
      data.prefix = m ? m[1] : "";
    }
    return data;
  }
  const boot = readBootstrap();
  const prefix = boot.prefix;
  const tokenMargin =
    typeof boot.refreshMarginMs === "number" ? boot.refreshMarginMs : DEFAULT_REFRESH_MARGIN_MS;
  // Without sessionStorage a tab cannot keep an id: behave as without JavaScript (one slot for
  // the browser), i.e. shared.
  const perTab = boot.sharing === "per_tab" && !!session;
  // A frame shares its tab's id and storage but takes no part in settling who owns them.
  const framed = window.top !== window;
  // This document, among the others of this browser: its id on the channel, and its age.
  const me = randomId(), born = (performance.timeOrigin || Date.now()) + performance.now();

  // -- core: state and onChange -----------------------------------------------------------------

  let state = snapshot(!!boot.isAuthenticated && !!boot.userId, boot.userId, boot.sessionId);
  const listeners = [];
  // The access token (and its expiry, epoch ms) this document holds; dropped on every change of
  // state. pending: the token call in flight, shared by concurrent getToken() calls.
  let token = null, tokenExpires = 0, pending = null;

  function snapshot(signedIn, userId, sessionId) {
    return Object.freeze({
      isAuthenticated: signedIn,
      userId: signedIn ? userId || null : null,
      sessionId: signedIn ? sessionId || null : null
    });
  }
  // A state as one string ("" signed out), as the modes store and send it.
  function keyOf(s) { return s.isAuthenticated ? s.userId + "|" + s.sessionId : ""; }
  function stateOf(key) {
    const parts = key ? key.split("|") : [];
    return snapshot(!!key, parts[0], parts[1]);
  }
  function setState(next) {
    if (keyOf(next) === keyOf(state)) return false;
    state = next;
    token = null;
    for (const listener of listeners) {
      try { listener(state); } catch (e) { setTimeout(() => { throw e; }); }
    }
    return true;
  }
  function onChange(cb) {
    listeners.push(cb);
    return function () {
      const i = listeners.indexOf(cb);
      if (i >= 0) listeners.splice(i, 1);
    };
  }

  // -- core: the page ---------------------------------------------------------------------------

  let leaving = false, reloading = false;
  function hide(on) {
    if (on || !reloading) document.documentElement.style.visibility = on ? "hidden" : "";
  }
  function reload() {
    reloading = true;
    // replace() re-requests with GET and no new history entry; a URL with a fragment would only
    // scroll, so reload() instead.
    if (location.hash) location.reload(); else location.replace(location.href);
  }

  // -- core: messages between this browser's documents ------------------------------------------

  let channel = null;
  function openChannel() {
    if (typeof BroadcastChannel !== "function" || channel) return;
    channel = new BroadcastChannel(CHANNEL);
    channel.onmessage = (event) => { deliver(event.data || {}); };
  }
  function post(message) {
    message.from = me;
    if (channel) channel.postMessage(message);
  }
  function deliver(msg) {
    if (msg.from === me || leaving || framed) return;
    mode.receive(msg);
  }

  // -- core: HTTP and tokens --------------------------------------------------------------------

  function originOf(url) {
    try { return new URL(url, location.href).origin; } catch { return null; }
  }
  function sameOrigin(url) { return originOf(url) === location.origin; }
  // authbridge.fetch sends the token only to this page's origin, the server's allowed origins
  // and the origins the page lists in authbridge.trustedOrigins; other URLs are fetched as is.
  function trusted(url) {
    const origin = originOf(url);
    if (!origin || origin === "null") return false;
    if (origin === location.origin) return true;
    for (const list of [boot.allowedOrigins, api.trustedOrigins]) {
      if (!list || typeof list.length !== "number") continue;
      for (let j = 0; j < list.length; j++) if (originOf(list[j]) === origin) return true;
    }
    return false;
  }

  function call(path, body) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    Object.assign(headers, mode.headers());
    return window.fetch(prefix + "/" + path, {
      method: "POST", credentials: "same-origin", headers: headers,
      body: JSON.stringify(body || {})
    }).then((res) => res.json().catch(() => ({})).then((data) => {
      if (res.ok) return data;
      const err = new Error("authbridge: " + (data.error || res.status));
      err.code = data.error || "HTTP" + res.status;
      err.status = res.status;
      throw err;
    }));
  }

  function getToken(options) {
    const force = options && options.forceRefresh;
    if (!state.isAuthenticated) return Promise.resolve(null);
    if (!force && token && tokenExpires - Date.now() > tokenMargin) return Promise.resolve(token);
    if (pending) return pending;
    // forceRefresh rotates now; otherwise the server rotates only when the token is due.
    pending = mode.serialise(() => call(force ? "refresh" : "token")).then((data) => {
      token = data.token;
      tokenExpires = data.expiresAt;
      return token;
    }, (err) => {
      if (err.status !== 401) throw err;
      if (setState(snapshot(false))) mode.publish();
      return null;
    });
    const done = () => { pending = null; };
    pending.then(done, done);
    return pending;
  }
  function authFetch(input, init) {
    const url = typeof input === "string" ? input : input.url || String(input);
    if (!trusted(url)) return window.fetch(input, init);
    init = Object.assign({}, init);
    return getToken().then((jwt) => {
      const headers = new Headers(init.headers || (input instanceof Request ? input.headers : {}));
      if (jwt && !headers.has("Authorization")) headers.set("Authorization", "Bearer " + jwt);
      if (sameOrigin(url)) {
        for (const [name, value] of Object.entries(mode.headers())) headers.set(name, value);
      }
      init.headers = headers;
      if (!init.credentials && sameOrigin(url)) init.credentials = "same-origin";
      return window.fetch(input, init).then((res) => {
        if (res.status === 401 && jwt && jwt === token) token = null;
        return res;
      });
    });
  }
  function signIn(provider, params) {
    if (provider === "passkey" && !(params && params.credential)) return passkeySignIn();
    return call("signin", { provider: provider, params: params || {} }).then((data) => {
      if (data.signedIn && setState(snapshot(true, data.userId, data.sessionId))) mode.publish();
      // OAuth: {redirect: url} sends this tab to the provider; the callback brings it back.
      if (typeof data.redirect === "string") location.assign(data.redirect);
      return data;
    });
  }
  function signOut() {
    return call("signout").then((data) => {
      if (setState(snapshot(false))) mode.publish();
      return data;
    });
  }

  // -- shared: one session per browser ----------------------------------------------------------
  // A sign-in/out seen by one tab is recorded in localStorage and announced on the channel (the
  // storage event is the fallback where BroadcastChannel is missing); the other tabs follow:
  // they reload, or with autoReload off only call their onChange callbacks. Token calls run one
  // tab at a time, under a Web Lock.

  function sharedMode() {
    function follow(key) {
      if (key === keyOf(state)) return;
      setState(stateOf(key));
      if (api.autoReload) reload();
    }
    function publish() {
      const key = keyOf(state);
      put(local, LOCAL_RECORD, JSON.stringify({ key: key, at: Date.now() }));
      post({ t: "auth", key: key });
    }
    window.addEventListener("storage", (event) => {
      if (event.key !== LOCAL_RECORD || !event.newValue || channel) return;
      try { follow(JSON.parse(event.newValue).key); } catch { /* not ours */ }
    });

    // One tab refreshes at a time; the next one then finds fresh cookies. Web Locks where
    // available, else a short lease in localStorage (not atomic: what races remain, the server's
    // reuse window absorbs).
    function serialise(fn) {
      if (navigator.locks && navigator.locks.request) {
        return navigator.locks.request(REFRESH_LOCK, () => fn());
      }
      function release() {
        if ((getJSON(local, LOCAL_LEASE) || {}).by === me) put(local, LOCAL_LEASE, "");
      }
      return new Promise((resolve) => {
        (function attempt(waited) {
          const held = getJSON(local, LOCAL_LEASE);
          if (held && held.by !== me && held.until > Date.now() && waited < LEASE_MS) {
            setTimeout(() => attempt(waited + LEASE_POLL_MS), LEASE_POLL_MS);
            return;
          }
          put(local, LOCAL_LEASE, JSON.stringify({ by: me, until: Date.now() + LEASE_MS }));
          resolve();
        })(0);
      }).then(fn).then(
        (result) => { release(); return result; },
        (error) => { release(); throw error; }
      );
    }

    // A freshly rendered page states what the server knew when the request left. If a tab
    // recorded a different state after that moment, this page is stale: reload (once); if not,
    // this page is the newest news: tell the other tabs.
    function start() {
      const rec = getJSON(local, LOCAL_RECORD), key = keyOf(state);
      if (rec && rec.key === key) { put(session, SESSION_SYNC, ""); return; }
      const started = performance.timeOrigin || born;
      if (rec && rec.at > started && !get(session, SESSION_SYNC)) {
        put(session, SESSION_SYNC, "1");
        reload();
        return;
      }
      put(session, SESSION_SYNC, "");
      publish();
    }

    return {
      tab: () => null,
      headers: () => ({}),
      serialise: serialise,
      publish: publish,
      receive(msg) { if (msg.t === "auth") follow(msg.key); },
      start: start,
      leave() { /* nothing to hand over: the next page shares the cookies */ },
      restored: () => (getJSON(local, LOCAL_RECORD) || {}).key ?? null
    };
  }

  // -- per_tab: each tab its own session slot ---------------------------------------------------
  // Each tab has an id in sessionStorage and its own cookie slot on the server. The id travels
  // as the X-Authbridge-Tab header (authbridge.fetch and the auth calls), as the authbridge_tab
  // form field (injected on submit) and as the short-lived authbridge.tab hint cookie (set on
  // link click, form submit and beforeunload) for top-level navigations. Every page states the
  // slot it was rendered for; a page for another tab's slot is hidden and re-requested.

  function perTabMode() {
    let tab = get(session, SESSION_TAB_ID);
    if (!tab) { tab = randomId(); put(session, SESSION_TAB_ID, tab); }
    let confirming = false;

    function mine() { return get(session, SESSION_MINE); } // "" signed out; null unknown
    function arm() {
      document.cookie = TAB_COOKIE + "=" + tab + "; Path=/; Max-Age=" + HINT_MAX_AGE_S +
        "; SameSite=Lax" + (location.protocol === "https:" ? "; Secure" : "");
    }
    function opensElsewhere(target) {
      return !!target && ["_self", "_top", "_parent"].indexOf(target.toLowerCase()) < 0;
    }

    // Re-request a page rendered for another slot, at most MAX_CORRECTIONS times in a row, so a
    // server that ignores hints cannot cause a reload loop.
    function correct() {
      let fix = getJSON(session, SESSION_FIX);
      const now = Date.now();
      if (!fix || now - fix.at > CORRECTION_WINDOW_MS) fix = { n: 0, at: now };
      if (fix.n >= MAX_CORRECTIONS) {
        if (window.console) console.warn("authbridge: page was rendered for another tab's session");
        return false;
      }
      put(session, SESSION_FIX, JSON.stringify({ n: fix.n + 1, at: now }));
      hide(true);
      leave(); // beforeunload does not fire for a document that is still loading
      reload();
      return true;
    }
    function checkSlot() {
      if (boot.tab === tab) {
        put(session, SESSION_FIX, "");
        put(session, SESSION_MINE, keyOf(state));
        return false;
      }
      // A page for another slot (or the browser-wide one) matters only if it shows someone or
      // this tab has a session of its own; a fresh tab keeps a signed-out page as it is.
      if (state.isAuthenticated || mine()) return correct();
      return false;
    }
    function rename() {
      confirming = false;
      tab = randomId();
      put(session, SESSION_TAB_ID, tab);
      put(session, SESSION_MINE, "");
      put(session, SESSION_FIX, "");
      token = null;
      if (!checkSlot()) setState(snapshot(false));
    }

    function receive(msg) {
      if (msg.tab !== tab || (msg.t !== "hello" && msg.t !== "mine")) return;
      // Two documents with one id: a duplicated tab (it copied sessionStorage), or this tab's
      // previous document in its last moments. The older keeps the id; the younger asks again
      // after a pause and takes a new id only if the older one is still there to answer.
      const older = msg.born < born || (msg.born === born && msg.from < me);
      if (!older && msg.t === "hello") post({ t: "mine", tab: tab, born: born });
      else if (older && msg.t === "mine") {
        if (confirming) rename();
        else {
          confirming = true;
          setTimeout(() => { post({ t: "hello", tab: tab, born: born }); }, CONFIRM_MS);
          setTimeout(() => { confirming = false; }, CONFIRM_MS * 3);
        }
      }
    }

    function start() {
      if (framed) { checkSlot(); return; }
      // A copy of a live tab's sessionStorage (duplicate tab, window.open) still says "live":
      // settle who owns the id before trusting it. A reload finds "left", written in leave().
      const suspicious = get(session, SESSION_LIVE) === "1";
      put(session, SESSION_LIVE, "1");
      post({ t: "hello", tab: tab, born: born });
      if (!suspicious || !channel) { checkSlot(); return; }
      // Wait for a live owner of this id to answer before deciding which slot this tab is; keep
      // a page that may be re-requested hidden meanwhile.
      const original = tab;
      if (state.isAuthenticated || mine()) hide(true);
      setTimeout(function settle() {
        if (confirming) { setTimeout(settle, CONFIRM_MS); return; }
        if (tab !== original || !checkSlot()) hide(false);
      }, CLASH_WAIT_MS);
    }
    function leave() {
      arm();
      if (framed) return;
      leaving = true;
      put(session, SESSION_LIVE, "0");
      // A cancelled navigation (a download, a "stay on page") leaves us here: undo.
      setTimeout(() => { leaving = false; put(session, SESSION_LIVE, "1"); }, LEAVE_UNDO_MS);
    }
    function restored() {
      if (!framed) put(session, SESSION_LIVE, "1");
      return mine();
    }

    // The hint for a same-tab navigation to this origin: a plain link click or a form submit.
    window.addEventListener("click", (event) => {
      if (event.defaultPrevented || event.button !== 0) return;
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const link = event.target && event.target.closest && event.target.closest("a[href]");
      if (!link || link.hasAttribute("download")) return;
      if (!opensElsewhere(link.getAttribute("target")) && sameOrigin(link.href)) arm();
    });
    window.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      const form = event.target, submitter = event.submitter;
      const target = submitter && submitter.getAttribute("formtarget") ||
        form.getAttribute("target");
      const action = submitter && submitter.getAttribute("formaction") || form.action;
      if (opensElsewhere(target) || !sameOrigin(action)) return;
      const method = submitter && submitter.getAttribute("formmethod") || form.method || "get";
      if (method.toLowerCase() === "post") {
        let field = form.querySelector("input[name=" + TAB_FIELD + "]");
        if (!field) {
          field = document.createElement("input");
          field.type = "hidden";
          field.name = TAB_FIELD;
          form.appendChild(field);
        }
        field.value = tab;
      }
      arm();
    });

    return {
      tab: () => tab,
      headers: () => ({ [TAB_HEADER]: tab }),
      serialise: (fn) => fn(), // each tab refreshes its own slot
      publish() { put(session, SESSION_MINE, keyOf(state)); },
      receive: receive,
      start: start,
      leave: leave,
      restored: restored
    };
  }

  // -- passkeys (WebAuthn) ----------------------------------------------------------------------
  // The ceremonies use the browser's JSON helpers (PublicKeyCredential.parseCreationOptionsFromJSON
  // / parseRequestOptionsFromJSON and credential.toJSON()); the server keeps each challenge,
  // bound to this tab by a cookie.

  function passkeysSupported() {
    return typeof window.PublicKeyCredential === "function" &&
      typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
      typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
  }
  function unsupported() {
    const err = new Error("authbridge: PasskeysUnsupported");
    err.code = "PasskeysUnsupported";
    return Promise.reject(err);
  }
  function passkeySignIn() {
    if (!passkeysSupported()) return unsupported();
    return call("passkeys/signin/options").then((data) => {
      const options = PublicKeyCredential.parseRequestOptionsFromJSON(data.publicKey);
      return navigator.credentials.get({ publicKey: options });
    }).then((credential) => signIn("passkey", { credential: credential.toJSON() }));
  }
  const passkeys = {
    isSupported: passkeysSupported,
    register(params) {
      if (!passkeysSupported()) return unsupported();
      return call("passkeys/register/options").then((data) => {
        const options = PublicKeyCredential.parseCreationOptionsFromJSON(data.publicKey);
        return navigator.credentials.create({ publicKey: options });
      }).then((credential) => {
        const body = { credential: credential.toJSON() };
        if (params && params.name) body.name = params.name;
        return call("passkeys/register", body);
      }).then((data) => data.passkey);
    },
    list() {
      const headers = Object.assign({ Accept: "application/json" }, mode.headers());
      return window.fetch(prefix + "/passkeys", { credentials: "same-origin", headers: headers })
        .then((res) => res.json().then((data) => {
          if (res.ok) return data.passkeys;
          const err = new Error("authbridge: " + data.error);
          err.code = data.error;
          err.status = res.status;
          throw err;
        }));
    },
    remove: (id) => call("passkeys/remove", { id: id })
  };

  // -- wiring -----------------------------------------------------------------------------------

  const mode = perTab ? perTabMode() : sharedMode();

  const api = {
    version: 1, sharing: boot.sharing || "shared", prefix: prefix, autoReload: true,
    trustedOrigins: [],
    signIn: signIn, signOut: signOut, getToken: getToken, fetch: authFetch, onChange: onChange,
    passkeys: passkeys
  };
  Object.defineProperty(api, "state", { enumerable: true, get: () => state });
  Object.defineProperty(api, "tab", { enumerable: true, get: () => mode.tab() });
  window.authbridge = api;

  window.addEventListener("beforeunload", () => { mode.leave(); });
  window.addEventListener("pagehide", () => {
    leaving = true;
    if (channel) { channel.close(); channel = null; }
  });
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    // Restored from the back/forward cache: no request was made, so compare with what is known.
    leaving = reloading = false;
    hide(false);
    const known = mode.restored();
    openChannel();
    if (known !== null && known !== keyOf(state)) reload();
  });

  openChannel();
  mode.start();
})();
