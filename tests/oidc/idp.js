// A real OpenID provider for authbridge's tests: oidc-provider (OpenID Certified) on 127.0.0.1.
//
// Started by the pytest fixture in tests/oidc/conftest.py with IDP_CONFIG (JSON):
//   { "jwks": {"keys": [private JWKs]}, "clients": [client metadata], "cookieKeys": [...] }
// It listens on a free port, then prints one JSON line {"issuer": "http://127.0.0.1:<port>"}.
// Development interactions are on: the login page accepts any login name (the account's `sub`);
// "<name>@<domain>" is also the e-mail, otherwise "<name>@example.test"; names starting with
// "unverified" have email_verified=false.
// Test-only control route: POST /__test/clients with a JSON list of client metadata adds or
// replaces clients (the app's callback URL is known only once its server has a port).
import http from 'node:http';

import { Provider } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

const config = JSON.parse(process.env.IDP_CONFIG ?? '{}');
const dynamicClients = new Map();

class TestAdapter extends MemoryAdapter {
  async find(id) {
    if (this.model === 'Client') {
      return dynamicClients.get(id);
    }
    return super.find(id);
  }
}

function account(sub) {
  const email = sub.includes('@') ? sub : `${sub}@example.test`;
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email,
        email_verified: !sub.startsWith('unverified'),
        name: `Test ${sub.split('@')[0]}`,
        picture: `https://images.example.test/${encodeURIComponent(sub)}.png`,
      };
    },
  };
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 1_000_000) reject(new Error('body too large'));
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(body));
      } catch (err) {
        reject(err);
      }
    });
  });
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  for (const client of config.clients ?? []) dynamicClients.set(client.client_id, client);
  const provider = new Provider(issuer, {
    adapter: TestAdapter,
    jwks: config.jwks,
    cookies: { keys: config.cookieKeys ?? ['test-cookie-key-0123456789abcdef'] },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'picture'],
    },
    async findAccount(ctx, sub) {
      return account(sub);
    },
    async issueRefreshToken(ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    ttl: {
      AccessToken: config.accessTokenTtl ?? 3600,
      AuthorizationCode: 120,
      IdToken: 3600,
      Interaction: 3600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 86400,
    },
  });
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    if (req.method === 'POST' && req.url === '/__test/clients') {
      try {
        for (const client of await readJson(req)) dynamicClients.set(client.client_id, client);
        res.writeHead(204).end();
      } catch (err) {
        res.writeHead(400).end(String(err));
      }
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
  process.on(signal, () => setTimeout(() => process.exit(0), 1000).unref());
}
