import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { AddressGuard, dialAddress, forbiddenAddressReason, mappedIPv4, parseCidr } from './address-guard.ts';
import type { Cidr } from './address-guard.ts';
import { dialTargetFor } from './dial-target.ts';
import { splitHostPort } from './canonical-host.ts';
import { HostMap, parseHostMap } from './host-map.ts';
import { forwardableHeaders, splitAbsoluteForm } from './http-checks.ts';

describe('forbiddenAddressReason', () => {
  it.each([
    ['127.0.0.1', /loopback/u],
    ['127.255.255.254', /loopback/u],
    ['10.1.2.3', /private/u],
    ['172.16.0.1', /private/u],
    ['192.168.1.1', /private/u],
    ['100.64.0.1', /carrier-grade NAT/u],
    ['169.254.169.254', /link-local/u],
    ['0.0.0.0', /unspecified/u],
    ['224.0.0.1', /multicast/u],
    ['240.0.0.1', /reserved/u],
    ['255.255.255.255', /reserved/u],
    ['192.0.2.1', /documentation/u],
    ['198.18.0.1', /benchmarking/u],
    ['168.63.129.16', /Azure wire server/u],
    ['::ffff:168.63.129.16', /Azure wire server/u],
    ['::', /unspecified/u],
    ['::1', /loopback/u],
    ['::ffff:127.0.0.1', /IPv4-mapped: 127\.0\.0\.1 is loopback/u],
    ['::ffff:7f00:1', /IPv4-mapped/u],
    ['::ffff:a9fe:a9fe', /link-local/u],
    ['64:ff9b::7f00:1', /NAT64/u],
    ['fc00::1', /unique-local/u],
    ['fd12:3456::1', /unique-local/u],
    ['fe80::1', /link-local/u],
    ['ff02::1', /multicast/u],
    ['2001:db8::1', /documentation/u],
    ['2002:7f00:1::1', /6to4/u],
    ['2001:0::1', /IETF/u],
    ['::7f00:1', /IPv4-compatible/u],
    ['not-an-ip', /not an IP address/u],
  ])('refuses %s', (address, reason) => {
    expect(forbiddenAddressReason(address)).toMatch(reason);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450:4001::200e', '::ffff:8.8.8.8'])('allows the public address %s', (address) => {
    expect(forbiddenAddressReason(address)).toBeNull();
  });

  it('dials IPv4-mapped addresses as the IPv4 they carry', () => {
    expect(mappedIPv4('::ffff:8.8.8.8')).toBe('8.8.8.8');
    expect(dialAddress('::ffff:808:808')).toEqual({ address: '8.8.8.8', family: 4 });
    expect(dialAddress('2606:4700::1')).toEqual({ address: '2606:4700::1', family: 6 });
  });
});

describe('splitHostPort', () => {
  it.each([
    ['api.stripe.com:443', { host: 'api.stripe.com', port: 443 }],
    ['[::1]:8443', { host: '[::1]', port: 8443 }],
    ['2130706433:80', { host: '2130706433', port: 80 }],
  ])('splits %s', (input, expected) => {
    expect(splitHostPort(input)).toEqual(expected);
  });

  it.each(['api.stripe.com', 'api.stripe.com:', 'h:0x1bb', 'h:+443', 'h:0', 'h:65536', '::1:443', '[::1', '[::1]x', ':443'])('refuses %s', (input) => {
    expect(splitHostPort(input)).toBeNull();
  });

  it('uses the default port only when asked to', () => {
    expect(splitHostPort('h', 80)).toEqual({ host: 'h', port: 80 });
  });
});

describe('host map', () => {
  it('parses EGRESS_HOST_MAP and prefers host:port entries', () => {
    const map = new HostMap(parseHostMap(' api.stripe.com=127.0.0.1:9443, api.stripe.com:80=127.0.0.1:9080 ,v6.test=[::1]:8443'));
    expect(map.lookup('api.stripe.com', 443)).toEqual({ address: '127.0.0.1', port: 9443 });
    expect(map.lookup('api.stripe.com', 80)).toEqual({ address: '127.0.0.1', port: 9080 });
    expect(map.lookup('v6.test', 443)).toEqual({ address: '::1', port: 8443 });
    expect(map.lookup('other.test', 443)).toBeUndefined();
  });

  it('keys entries by canonical host', () => {
    const map = new HostMap({ 'API.Stripe.COM.': { address: '127.0.0.1', port: 1 } });
    expect(map.lookup('api.stripe.com', 443)).toEqual({ address: '127.0.0.1', port: 1 });
  });

  it('names every bad entry at once', () => {
    expect(() => parseHostMap('a=1.2.3.4,b=notanip:80,c,d=1.2.3.4:99999')).toThrow(/"b=notanip:80".*"c".*"d=1\.2\.3\.4:99999"/u);
    try {
      parseHostMap('x');
    } catch (err) {
      expect(err).toMatchObject({ code: 'ERR_EGRESS_HOST_MAP' });
    }
  });
});

describe('request targets and headers', () => {
  it.each([
    ['http://a.test/x/../y?q', { scheme: 'http', authority: 'a.test', path: '/x/../y?q' }],
    ['http://a.test', { scheme: 'http', authority: 'a.test', path: '/' }],
    ['HTTP://a.test?q=1', { scheme: 'http', authority: 'a.test', path: '/?q=1' }],
    ['https://a.test:8443/%2e%2e', { scheme: 'https', authority: 'a.test:8443', path: '/%2e%2e' }],
  ])('splits %s without re-parsing the path', (target, expected) => {
    expect(splitAbsoluteForm(target)).toEqual(expected);
  });

  it('drops hop-by-hop headers and those the Connection header names', () => {
    expect(
      forwardableHeaders(['Host', 'h', 'Connection', 'keep-alive, X-Secret', 'X-Secret', 's', 'Proxy-Authorization', 'p', 'Keep-Alive', '5', 'Accept', '*/*', 'TE', 'trailers', 'X-Keep', 'k']),
    ).toEqual(['Accept', '*/*', 'X-Keep', 'k']);
  });
});

describe('AddressGuard: the deployment\'s own addresses and ranges', () => {
  const cidrs = (...texts: string[]): Cidr[] => texts.map((t) => parseCidr(t) as Cidr);
  const guard = new AddressGuard({ hostAddresses: ['203.0.114.7', '2a01:4f8::7', 'fe80::1%eth0'], denyCidrs: cidrs('198.51.99.0/24', '2a02:c7f::/32', '81.2.69.160') });

  it.each([
    ['203.0.114.7', /own host/u],
    ['::ffff:203.0.114.7', /own host/u],
    ['2a01:4f8:0::7', /own host/u],
    ['198.51.99.200', /operator's denied range 198\.51\.99\.0\/24/u],
    ['::ffff:198.51.99.1', /198\.51\.99\.0\/24/u],
    ['2a02:c7f:1::5', /2a02:c7f::\/32/u],
    ['81.2.69.160', /81\.2\.69\.160\/32/u],
    ['127.0.0.1', /loopback/u],
  ])('refuses %s', (address, reason) => {
    expect(guard.reasonFor(address)).toMatch(reason);
  });

  it.each(['203.0.114.8', '198.51.98.1', '2a01:4f8::8', '81.2.69.161'])('leaves %s to the base list (public)', (address) => {
    expect(guard.reasonFor(address)).toBeNull();
  });

  it('takes the host addresses from os.networkInterfaces() by default', () => {
    const own = Object.values(os.networkInterfaces()).flatMap((l) => l ?? []).map((i) => i.address);
    const defaults = new AddressGuard();
    for (const address of own) expect(defaults.reasonFor(address.replace(/%.*$/u, ''))).not.toBeNull();
  });

  it.each([
    ['10.0.0.0/33', /prefix length/u],
    ['10.0.0/8', /not an IP address/u],
    ['::/129', /prefix length/u],
    ['1.2.3.4/8/1', /not an IP address/u],
    ['1.2.3.4/x', /prefix length/u],
  ])('refuses the range %s', (text, problem) => {
    expect(parseCidr(text)).toMatch(problem);
  });

  it('refuses a name that resolves to the host\'s own address, and lets a mapped host through', async () => {
    const lookup = () => Promise.resolve([{ address: '203.0.114.7' }]);
    const dest = { scheme: 'https' as const, rawHost: 'self.example', host: 'self.example', port: 443 };
    expect(await dialTargetFor(dest, new HostMap(), guard, lookup)).toMatchObject({ refusal: { code: 'destination-address', reason: expect.stringMatching(/own host/u) as string } });
    const mapped = new HostMap({ 'self.example': { address: '203.0.114.7', port: 8443 } });
    expect(await dialTargetFor(dest, mapped, guard, lookup)).toMatchObject({ target: { address: '203.0.114.7', port: 8443, mapped: true } });
  });
});
