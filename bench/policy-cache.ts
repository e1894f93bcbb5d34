/**
 * The policy cache: what a hit costs, beside a miss that fetches from a
 * loopback policy API, and that concurrent misses for one token share one
 * fetch.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PolicyFetcher } from '../policies/index.ts';
import { summarise, timeSequential, type Summary } from './stats.ts';

const POLICY = {
  allowedDomains: ['api.stripe.com', '*.okta.com'],
  blockedDomains: [],
  apiPathRules: { '*.okta.com': [{ path: '/*', allow: true, method: 'GET' }, { path: '/*', allow: false, method: 'DELETE' }] },
  allowedPackages: ['@okta'],
  allowedBinaries: [],
};

export interface PolicyCacheResult {
  hitNs: number;
  hitsTimed: number;
  miss: Summary;
  concurrentMisses: number;
  fetchesForThem: number;
}

export async function policyCache(): Promise<PolicyCacheResult> {
  let requests = 0;
  const body = JSON.stringify(POLICY);
  const api = http.createServer((_req, res) => {
    requests += 1;
    // A little latency, so concurrent misses really overlap.
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body), 20);
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}/policy`;
  try {
    const fetcher = new PolicyFetcher({ url, ttlMs: 60_000 });
    let n = 0;
    const miss = summarise(await timeSequential(20, () => fetcher.fetchPolicy(`miss-token-${n++}`)));

    await fetcher.fetchPolicy('hot-token');
    const hitsTimed = 200_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < hitsTimed; i++) await fetcher.fetchPolicy('hot-token');
    const hitNs = Number(process.hrtime.bigint() - start) / hitsTimed;

    const concurrentMisses = 100;
    requests = 0;
    await Promise.all(Array.from({ length: concurrentMisses }, () => fetcher.fetchPolicy('cold-token')));
    return { hitNs: Math.round(hitNs), hitsTimed, miss, concurrentMisses, fetchesForThem: requests };
  } finally {
    await new Promise<void>((resolve) => api.close(() => resolve()));
  }
}
