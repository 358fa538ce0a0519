// A real JWKS-serving issuer for the trusted-issuer tests, built on jose.
//   node issuer.mjs convex   Convex Auth-shaped: RS256 keys published without kid, iss = its URL
//   node issuer.mjs auth0    Auth0-shaped: RS256 keys with kid, iss = its URL + "/"
// Prints {"url": ..., "issuer": ...} once listening on 127.0.0.1 (a free port), then serves:
//   GET  /.well-known/openid-configuration, GET /.well-known/jwks.json   (counted)
//   POST /mint {claims, header?}  -> {token}     signs with the newest key
//   POST /rotate                  -> {kid}       a new key replaces the old ones
//   POST /mode {mode, cacheControl?}              "up", or "down" (key requests get their
//                                                 connection reset)
//   GET  /stats                   -> {jwks, discovery}
// Time claims come from the test (its injected clock), so nothing here reads the clock.
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { SignJWT, exportJWK, generateKeyPair } from "jose";

const kind = process.argv[2] === "auth0" ? "auth0" : "convex";
const state = { keys: [], mode: "up", cacheControl: "public, max-age=300", jwks: 0, discovery: 0 };
let issuer = "";

async function newKey() {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), alg: "RS256", use: "sig" };
  const kid = kind === "auth0" ? randomUUID() : undefined;
  if (kid) jwk.kid = kid;
  return { jwk, privateKey, kid };
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(text);
}

async function readJson(req) {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

const server = createServer(async (req, res) => {
  try {
    const path = req.url.split("?")[0];
    if (path === "/.well-known/openid-configuration" || path === "/.well-known/jwks.json") {
      if (path === "/.well-known/jwks.json") state.jwks += 1;
      else state.discovery += 1;
      if (state.mode === "down") return req.socket.destroy();
      const cache = state.cacheControl ? { "cache-control": state.cacheControl } : {};
      if (path === "/.well-known/jwks.json") {
        return send(res, 200, { keys: state.keys.map((k) => k.jwk) }, cache);
      }
      return send(res, 200, { issuer, jwks_uri: `${baseUrl}/.well-known/jwks.json` }, cache);
    }
    if (req.method === "POST" && path === "/mint") {
      const { claims, header } = await readJson(req);
      const key = state.keys[state.keys.length - 1];
      const protectedHeader = { alg: "RS256", typ: "JWT", ...(key.kid ? { kid: key.kid } : {}), ...(header ?? {}) };
      const token = await new SignJWT({ iss: issuer, ...claims })
        .setProtectedHeader(protectedHeader)
        .sign(key.privateKey);
      return send(res, 200, { token });
    }
    if (req.method === "POST" && path === "/rotate") {
      state.keys = [await newKey()];
      return send(res, 200, { kid: state.keys[0].kid ?? null });
    }
    if (req.method === "POST" && path === "/mode") {
      const body = await readJson(req);
      if (body.mode) state.mode = body.mode;
      if ("cacheControl" in body) state.cacheControl = body.cacheControl;
      return send(res, 200, { mode: state.mode });
    }
    if (path === "/stats") return send(res, 200, { jwks: state.jwks, discovery: state.discovery });
    send(res, 404, { error: "not found" });
  } catch (error) {
    send(res, 500, { error: String(error) });
  }
});

let baseUrl = "";
state.keys = [await newKey()];
server.listen(0, "127.0.0.1", () => {
  baseUrl = `http://127.0.0.1:${server.address().port}`;
  issuer = kind === "auth0" ? `${baseUrl}/` : baseUrl;
  process.stdout.write(JSON.stringify({ url: baseUrl, issuer }) + "\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
