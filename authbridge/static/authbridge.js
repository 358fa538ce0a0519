/* authbridge browser client: window.authbridge. No build step, no dependencies.
 *
 * Load it synchronously in <head>, right after the JSON bootstrap that auth_bootstrap() renders
 * (<script id="authbridge-state" type="application/json">), so the page's auth state is known
 * before the body is parsed: no loading flash, and in per_tab mode a page rendered for another
 * tab's slot is hidden and re-requested before it is ever painted.
 *
 * shared:  one session per browser. A sign-in/out seen by one tab is published on a
 *          BroadcastChannel and in localStorage (its storage event is the fallback); the other
 *          tabs reload. Token fetches are serialised across tabs with a Web Lock.
 * per_tab: each tab has an id in sessionStorage and its own cookie slot on the server. The id
 *          travels as the X-Authbridge-Tab header (authbridge.fetch), as the authbridge_tab form
 *          field (injected on submit) and as the short-lived authbridge.tab hint cookie (set on
 *          link click, form submit and beforeunload) for top-level navigations.
 *
 * authbridge.fetch(url, init) is fetch with "Authorization: Bearer <jwt>" added, but only for
 * this page's origin, the server's AUTHBRIDGE_ALLOWED_ORIGINS (from the bootstrap) and the
 * origins the page adds to authbridge.trustedOrigins; any other URL is fetched untouched.
 */
(function () {
  "use strict";
  if (window.authbridge && window.authbridge.version) return;

  var CHANNEL = "authbridge", RECORD = "authbridge.auth", HINT = "authbridge.tab";
  var LEASE = "authbridge.refreshing", LEASE_MS = 5000;
  var MAX_CORRECTIONS = 2, CORRECTION_WINDOW_MS = 15000, CLASH_WAIT_MS = 250, CONFIRM_MS = 300;

  function store(kind) {
    try { var s = window[kind]; s.getItem("x"); return s; } catch (e) { return null; }
  }
  var session = store("sessionStorage"), local = store("localStorage");
  function get(s, k) { try { return s ? s.getItem(k) : null; } catch (e) { return null; } }
  function put(s, k, v) { try { if (s) s.setItem(k, v); } catch (e) { /* quota, privacy mode */ } }
  function getJSON(s, k) {
    try { return JSON.parse(get(s, k) || "null"); } catch (e) { return null; }
  }

  // The server states its settings in the bootstrap (endpoint prefix, refresh margin, allowed
  // origins); without one, the prefix is where this script was served from.
  function bootstrap() {
    var el = document.getElementById("authbridge-state"), data = {};
    try { data = el ? JSON.parse(el.textContent) : {}; } catch (e) { data = {}; }
    if (!data.prefix) {
      var src = document.currentScript && document.currentScript.src;
      var m = src && /^[^?#]*?(\/[^?#]*)\/client\.js/.exec(src.replace(location.origin, ""));
      data.prefix = m ? m[1] : "";
    }
    return data;
  }
  var boot = bootstrap();
  // Without sessionStorage a tab cannot keep an id: behave as without JavaScript (one slot for
  // the browser). A frame shares its tab's id but takes no part in settling who owns it.
  var prefix = boot.prefix, perTab = boot.sharing === "per_tab" && !!session;
  var framed = window.top !== window;
  var me = randomId(), born = (performance.timeOrigin || Date.now()) + performance.now();
  var listeners = [], token = null, tokenExpires = 0, pending = null;
  // Renew a token as early as the server would rotate it (its maximum margin without a bootstrap).
  var tokenMargin = typeof boot.refreshMarginMs === "number" ? boot.refreshMarginMs : 60000;
  var leaving = false, reloading = false, confirming = false, channel = null;
  var state = snapshot(!!boot.isAuthenticated && !!boot.userId, boot.userId, boot.sessionId);

  function randomId() {
    var bytes = new Uint8Array(16), out = "";
    crypto.getRandomValues(bytes);
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
    return out;
  }
  function snapshot(signedIn, userId, sessionId) {
    return Object.freeze({
      isAuthenticated: signedIn,
      userId: signedIn ? userId || null : null,
      sessionId: signedIn ? sessionId || null : null
    });
  }
  function keyOf(s) { return s.isAuthenticated ? s.userId + "|" + s.sessionId : ""; }
  function stateOf(key) {
    var parts = key ? key.split("|") : [];
    return snapshot(!!key, parts[0], parts[1]);
  }
  function setState(next) {
    if (keyOf(next) === keyOf(state)) return false;
    state = next;
    token = null;
    for (var i = 0; i < listeners.length; i++) {
      try { listeners[i](state); } catch (e) { setTimeout(function () { throw e; }); }
    }
    return true;
  }
  function hide(on) {
    if (on || !reloading) document.documentElement.style.visibility = on ? "hidden" : "";
  }
  function reload() {
    reloading = true;
    // replace() re-requests with GET and no new history entry; a URL with a fragment would only
    // scroll, so reload() instead.
    if (location.hash) location.reload(); else location.replace(location.href);
  }

  // -- per_tab: the tab id, the hint cookie and the slot check --------------------------------

  var tab = null;
  if (perTab) {
    tab = get(session, "authbridge.tabId");
    if (!tab) { tab = randomId(); put(session, "authbridge.tabId", tab); }
  }
  function mine() { return get(session, "authbridge.mine"); } // "" signed out; null unknown
  function arm() {
    if (!perTab) return;
    document.cookie = HINT + "=" + tab + "; Path=/; Max-Age=10; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }
  function originOf(url) {
    try { return new URL(url, location.href).origin; } catch (e) { return null; }
  }
  function sameOrigin(url) { return originOf(url) === location.origin; }
  // authbridge.fetch sends the token only to this page's origin, the server's allowed origins
  // and the origins the page lists in authbridge.trustedOrigins; other URLs are fetched as is.
  function trusted(url) {
    var origin = originOf(url);
    if (!origin || origin === "null") return false;
    if (origin === location.origin) return true;
    var lists = [boot.allowedOrigins, api.trustedOrigins];
    for (var i = 0; i < lists.length; i++) {
      var list = lists[i];
      if (!list || typeof list.length !== "number") continue;
      for (var j = 0; j < list.length; j++) if (originOf(list[j]) === origin) return true;
    }
    return false;
  }
  function opensElsewhere(target) {
    return !!target && ["_self", "_top", "_parent"].indexOf(target.toLowerCase()) < 0;
  }

  // Re-request a page rendered for another slot, at most MAX_CORRECTIONS times in a row, so a
  // server that ignores hints cannot cause a reload loop.
  function correct() {
    var fix = getJSON(session, "authbridge.fix"), now = Date.now();
    if (!fix || now - fix.at > CORRECTION_WINDOW_MS) fix = { n: 0, at: now };
    if (fix.n >= MAX_CORRECTIONS) {
      if (window.console) console.warn("authbridge: page was rendered for another tab's session");
      return false;
    }
    put(session, "authbridge.fix", JSON.stringify({ n: fix.n + 1, at: now }));
    hide(true);
    leave();  // beforeunload does not fire for a document that is still loading
    reload();
    return true;
  }
  function checkSlot() {
    if (boot.tab === tab) {
      put(session, "authbridge.fix", "");
      put(session, "authbridge.mine", keyOf(state));
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
    put(session, "authbridge.tabId", tab);
    put(session, "authbridge.mine", "");
    put(session, "authbridge.fix", "");
    token = null;
    if (!checkSlot()) setState(snapshot(false));
  }

  // -- cross-tab messages -----------------------------------------------------------------------

  function open() {
    if (typeof BroadcastChannel !== "function" || channel) return;
    channel = new BroadcastChannel(CHANNEL);
    channel.onmessage = function (event) { receive(event.data || {}); };
  }
  function post(message) {
    message.from = me;
    if (channel) channel.postMessage(message);
  }
  function receive(msg) {
    if (msg.from === me || leaving || framed) return;
    if (perTab && msg.tab === tab && (msg.t === "hello" || msg.t === "mine")) {
      // Two documents with one id: a duplicated tab (it copied sessionStorage), or this tab's
      // previous document in its last moments. The older keeps the id; the younger asks again
      // after a pause and takes a new id only if the older one is still there to answer.
      var older = msg.born < born || (msg.born === born && msg.from < me);
      if (!older && msg.t === "hello") post({ t: "mine", tab: tab, born: born });
      else if (older && msg.t === "mine") {
        if (confirming) rename();
        else {
          confirming = true;
          setTimeout(function () { post({ t: "hello", tab: tab, born: born }); }, CONFIRM_MS);
          setTimeout(function () { confirming = false; }, CONFIRM_MS * 3);
        }
      }
    } else if (!perTab && msg.t === "auth") {
      remote(msg.key);
    }
  }
  function remote(key) {
    if (key === keyOf(state)) return;
    setState(stateOf(key));
    if (api.autoReload) reload();
  }
  function publish() {
    if (perTab) { put(session, "authbridge.mine", keyOf(state)); return; }
    var key = keyOf(state);
    put(local, RECORD, JSON.stringify({ key: key, at: Date.now() }));
    post({ t: "auth", key: key });
  }

  // shared: a freshly rendered page states what the server knew when the request left. If a tab
  // recorded a different state after that moment, this page is stale: reload (bounded); if not,
  // this page is the newest news: tell the other tabs.
  function syncShared() {
    var rec = getJSON(local, RECORD), key = keyOf(state);
    if (rec && rec.key === key) { put(session, "authbridge.sync", ""); return; }
    var started = performance.timeOrigin || born;
    if (rec && rec.at > started && !get(session, "authbridge.sync")) {
      put(session, "authbridge.sync", "1");
      reload();
      return;
    }
    put(session, "authbridge.sync", "");
    publish();
  }

  // -- HTTP --------------------------------------------------------------------------------------

  function call(path, body) {
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (perTab) headers["X-Authbridge-Tab"] = tab;
    return window.fetch(prefix + "/" + path, {
      method: "POST", credentials: "same-origin", headers: headers,
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (res.ok) return data;
        var err = new Error("authbridge: " + (data.error || res.status));
        err.code = data.error || "HTTP" + res.status;
        err.status = res.status;
        throw err;
      });
    });
  }
  function withLock(fn) {
    // shared: one tab refreshes at a time; the next one then finds fresh cookies. Web Locks
    // where available, else a short lease in localStorage (not atomic: what races remain, the
    // server's reuse window absorbs).
    if (perTab) return fn();
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request("authbridge.refresh", function () { return fn(); });
    }
    function release() {
      if ((getJSON(local, LEASE) || {}).by === me) put(local, LEASE, "");
    }
    return new Promise(function (resolve) {
      (function attempt(waited) {
        var held = getJSON(local, LEASE);
        if (held && held.by !== me && held.until > Date.now() && waited < LEASE_MS) {
          return setTimeout(function () { attempt(waited + 50); }, 50);
        }
        put(local, LEASE, JSON.stringify({ by: me, until: Date.now() + LEASE_MS }));
        resolve();
      })(0);
    }).then(fn).then(
      function (result) { release(); return result; },
      function (error) { release(); throw error; }
    );
  }
  function getToken(options) {
    var force = options && options.forceRefresh;
    if (!state.isAuthenticated) return Promise.resolve(null);
    if (!force && token && tokenExpires - Date.now() > tokenMargin) return Promise.resolve(token);
    if (pending) return pending;
    // forceRefresh rotates now; otherwise the server rotates only when the token is due.
    pending = withLock(function () { return call(force ? "refresh" : "token"); });
    pending = pending.then(function (data) {
      token = data.token;
      tokenExpires = data.expiresAt;
      return token;
    }, function (err) {
      if (err.status !== 401) throw err;
      if (setState(snapshot(false))) publish();
      return null;
    });
    pending.then(done, done);
    function done() { pending = null; }
    return pending;
  }
  function authFetch(input, init) {
    var url = typeof input === "string" ? input : input.url || String(input);
    if (!trusted(url)) return window.fetch(input, init);
    init = Object.assign({}, init);
    return getToken().then(function (jwt) {
      var headers = new Headers(init.headers || (input instanceof Request ? input.headers : {}));
      if (jwt && !headers.has("Authorization")) headers.set("Authorization", "Bearer " + jwt);
      if (perTab && sameOrigin(url)) headers.set("X-Authbridge-Tab", tab);
      init.headers = headers;
      if (!init.credentials && sameOrigin(url)) init.credentials = "same-origin";
      return window.fetch(input, init).then(function (res) {
        if (res.status === 401 && jwt && jwt === token) token = null;
        return res;
      });
    });
  }
  function signIn(provider, params) {
    if (provider === "passkey" && !(params && params.credential)) return passkeySignIn();
    return call("signin", { provider: provider, params: params || {} }).then(function (data) {
      if (data.signedIn && setState(snapshot(true, data.userId, data.sessionId))) publish();
      // OAuth: {redirect: url} sends this tab to the provider; the callback brings it back.
      if (typeof data.redirect === "string") location.assign(data.redirect);
      return data;
    });
  }
  function signOut() {
    return call("signout").then(function (data) {
      if (setState(snapshot(false))) publish();
      return data;
    });
  }
  function onChange(cb) {
    listeners.push(cb);
    return function () {
      var i = listeners.indexOf(cb);
      if (i >= 0) listeners.splice(i, 1);
    };
  }

  // -- passkeys (WebAuthn) -----------------------------------------------------------------------
  // Separate from the rest: the ceremonies use the browser's JSON helpers
  // (PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON and
  // credential.toJSON()); the server keeps each challenge, bound to this tab by a cookie.

  function passkeysSupported() {
    return typeof window.PublicKeyCredential === "function" &&
      typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
      typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
  }
  function unsupported() {
    var err = new Error("authbridge: PasskeysUnsupported");
    err.code = "PasskeysUnsupported";
    return Promise.reject(err);
  }
  function passkeySignIn() {
    if (!passkeysSupported()) return unsupported();
    return call("passkeys/signin/options").then(function (data) {
      var options = PublicKeyCredential.parseRequestOptionsFromJSON(data.publicKey);
      return navigator.credentials.get({ publicKey: options });
    }).then(function (credential) {
      return signIn("passkey", { credential: credential.toJSON() });
    });
  }
  var passkeys = {
    isSupported: passkeysSupported,
    register: function (params) {
      if (!passkeysSupported()) return unsupported();
      return call("passkeys/register/options").then(function (data) {
        var options = PublicKeyCredential.parseCreationOptionsFromJSON(data.publicKey);
        return navigator.credentials.create({ publicKey: options });
      }).then(function (credential) {
        var body = { credential: credential.toJSON() };
        if (params && params.name) body.name = params.name;
        return call("passkeys/register", body);
      }).then(function (data) { return data.passkey; });
    },
    list: function () {
      var headers = { Accept: "application/json" };
      if (perTab) headers["X-Authbridge-Tab"] = tab;
      return window.fetch(prefix + "/passkeys", { credentials: "same-origin", headers: headers })
        .then(function (res) {
          return res.json().then(function (data) {
            if (res.ok) return data.passkeys;
            var err = new Error("authbridge: " + data.error);
            err.code = data.error;
            err.status = res.status;
            throw err;
          });
        });
    },
    remove: function (id) { return call("passkeys/remove", { id: id }); }
  };

  // -- end of passkeys ---------------------------------------------------------------------------

  var api = {
    version: 1, sharing: boot.sharing || "shared", prefix: prefix, autoReload: true,
    trustedOrigins: [],
    signIn: signIn, signOut: signOut, getToken: getToken, fetch: authFetch, onChange: onChange,
    passkeys: passkeys
  };
  Object.defineProperty(api, "state", { enumerable: true, get: function () { return state; } });
  Object.defineProperty(api, "tab", { enumerable: true, get: function () { return tab; } });
  window.authbridge = api;

  // -- page lifecycle ----------------------------------------------------------------------------

  function start() {
    open();
    if (!perTab) { syncShared(); return; }
    if (framed) { checkSlot(); return; }
    // A copy of a live tab's sessionStorage (duplicate tab, window.open) still says "live":
    // settle who owns the id before trusting it. A reload finds "left", written in beforeunload.
    var suspicious = get(session, "authbridge.live") === "1";
    put(session, "authbridge.live", "1");
    post({ t: "hello", tab: tab, born: born });
    if (!suspicious || !channel) { checkSlot(); return; }
    // Wait for a live owner of this id to answer before deciding which slot this tab is; keep
    // a page that may be re-requested hidden meanwhile.
    var original = tab;
    if (state.isAuthenticated || mine()) hide(true);
    setTimeout(function settle() {
      if (confirming) return setTimeout(settle, CONFIRM_MS);
      if (tab !== original || !checkSlot()) hide(false);
    }, CLASH_WAIT_MS);
  }

  function leave() {
    arm();
    if (framed || !perTab) return;
    leaving = true;
    put(session, "authbridge.live", "0");
    // A cancelled navigation (a download, a "stay on page") leaves us here: undo.
    setTimeout(function () { leaving = false; put(session, "authbridge.live", "1"); }, 1000);
  }
  window.addEventListener("beforeunload", leave);
  window.addEventListener("pagehide", function () {
    leaving = true;
    if (channel) { channel.close(); channel = null; }
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    // Restored from the back/forward cache: no request was made, so compare with what is known.
    leaving = reloading = false;
    hide(false);
    if (perTab && !framed) put(session, "authbridge.live", "1");
    open();
    var known = perTab ? mine() : (getJSON(local, RECORD) || {}).key;
    if (known != null && known !== keyOf(state)) reload();
  });
  window.addEventListener("storage", function (event) {
    if (perTab || event.key !== RECORD || !event.newValue || channel) return;
    try { remote(JSON.parse(event.newValue).key); } catch (e) { /* not ours */ }
  });
  window.addEventListener("click", function (event) {
    if (!perTab || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var link = event.target && event.target.closest && event.target.closest("a[href]");
    if (!link || link.hasAttribute("download")) return;
    if (!opensElsewhere(link.getAttribute("target")) && sameOrigin(link.href)) arm();
  });
  window.addEventListener("submit", function (event) {
    if (!perTab || event.defaultPrevented) return;
    var form = event.target, submitter = event.submitter;
    var target = submitter && submitter.getAttribute("formtarget") || form.getAttribute("target");
    var action = submitter && submitter.getAttribute("formaction") || form.action;
    if (opensElsewhere(target) || !sameOrigin(action)) return;
    var method = (submitter && submitter.getAttribute("formmethod") || form.method || "get");
    if (method.toLowerCase() === "post") {
      var field = form.querySelector("input[name=authbridge_tab]");
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "authbridge_tab";
        form.appendChild(field);
      }
      field.value = tab;
    }
    arm();
  });

  start();
})();
