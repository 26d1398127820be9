import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TlsFiles {
  /** The test CA that signed the certificate: clients trust it (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE for Go). */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A throwaway CA and a certificate for 127.0.0.1/localhost, made with the openssl command line. */
export function createTestTls(dir: string): TlsFiles {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-days',
    '2',
    '-subj',
    '/CN=charmed-ring-test-ca',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
  );
  openssl('req', ...ec, '-subj', '/CN=127.0.0.1', '-keyout', file('tls.key'), '-out', file('tls.csr'));
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    file('tls.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    file('san.ext'),
    '-out',
    file('tls.pem'),
  );
  return { caFile: file('ca.pem'), certFile: file('tls.pem'), keyFile: file('tls.key') };
}
