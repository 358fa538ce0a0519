// Verifies a token the way a Convex deployment does for a customJwt provider: the JWKS is
// fetched from its URL with jose's createRemoteJWKSet, and jwtVerify checks the signature with
// the configured algorithm, the issuer, the audience (applicationID) and exp. Convex also needs
// kid, alg and typ in the header and sub, iss, iat and exp in the payload.
// Usage: node convex_verify.mjs <jwks url> <issuer> <audience> <algorithm> <token>
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";

const [jwksUrl, issuer, audience, algorithm, token] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + "\n");

try {
  const header = decodeProtectedHeader(token);
  for (const name of ["kid", "alg", "typ"]) {
    if (!header[name]) throw Object.assign(new Error(`header has no ${name}`), { code: "HEADER" });
  }
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: [algorithm],
    typ: "JWT",
    requiredClaims: ["sub", "iss", "aud", "iat", "exp"],
  });
  out({ ok: true, header: protectedHeader, payload });
} catch (error) {
  out({ ok: false, code: error.code ?? "ERROR", message: String(error.message) });
}
