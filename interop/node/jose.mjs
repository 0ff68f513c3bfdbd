// Signs and verifies JWTs with the jose package, which shares no code with keyd.
//
//   node jose.mjs sign    stdin: one job a line {"id","pem","kid","alg","sub","ttl"}
//                         stdout: one line a job {"id","token"}
//   node jose.mjs verify  stdin: one job a line {"id","jwks","token"}
//                         stdout: one line a job {"id","sub"} or {"id","error","unknown_kid"}
//
// verify fetches the JWKS from the job's URL as a relying party would, and lets the
// published key, not the token, decide which algorithm is acceptable.
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const ISSUER = 'keyd-interop';

async function sign(job) {
  const key = await jose.importPKCS8(readFileSync(job.pem, 'utf8'), job.alg);
  const now = Math.floor(Date.now() / 1000);
  const token = await new jose.SignJWT({ sub: job.sub })
    .setProtectedHeader({ alg: job.alg, kid: job.kid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + job.ttl)
    .sign(key);
  return { id: job.id, token };
}

async function verify(job) {
  const keys = jose.createRemoteJWKSet(new URL(job.jwks), { cacheMaxAge: 0 });
  try {
    const { payload } = await jose.jwtVerify(job.token, keys, { issuer: ISSUER });
    return { id: job.id, sub: payload.sub };
  } catch (err) {
    return {
      id: job.id,
      error: `${err.code ?? err.name}: ${err.message}`,
      unknown_kid: err.code === 'ERR_JWKS_NO_MATCHING_KEY',
    };
  }
}

const actions = { sign, verify };
const action = actions[process.argv[2]];
if (!action) {
  console.error('usage: node jose.mjs sign|verify < jobs');
  process.exit(2);
}
const jobs = readFileSync(0, 'utf8').split('\n').filter((l) => l.trim() !== '');
for (const line of jobs) {
  process.stdout.write(JSON.stringify(await action(JSON.parse(line))) + '\n');
}
