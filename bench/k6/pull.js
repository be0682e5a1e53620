// The k6 subject of bench/arrivals.py and bench/per_request.py: the GETs of one docker pull
// (ping, manifest with docker's Accept header, config, layer) against the bench's static nginx.
//
// Everything comes from the environment (bench/common.py's run_k6 sets it):
//   BENCH_URL      http://127.0.0.1:PORT
//   BENCH_PATHS    the four paths, space separated (ping, manifest, config, layer)
//   BENCH_ACCEPT   the manifest GET's Accept header (regload's)
//   BENCH_VERIFY   "1": parse the manifest and GET the config and each layer by the digests it
//                  names, each body's size and sha256 checked (k6/crypto), as regload does;
//                  otherwise bare GETs of the four fixed paths, bodies as text (k6's default)
//   BENCH_VUS      VUs (constant-vus), or preAllocatedVUs = maxVUs (constant-arrival-rate)
//   BENCH_RATE     iterations per second: constant-arrival-rate; absent or 0: constant-vus
//   BENCH_SECONDS  the scenario's duration
//   BENCH_SUMMARY  where handleSummary writes k6's end-of-test data (JSON)
// setup() and teardown() log a marker each, so that the bench reads the process's CPU at the
// start and at the end of the scenario, k6's start-up (a JavaScript runtime per VU) left out.
import http from 'k6/http';
import crypto from 'k6/crypto';
import { Counter } from 'k6/metrics';

const BASE = __ENV.BENCH_URL;
const [PING, MANIFEST, CONFIG, LAYER] = __ENV.BENCH_PATHS.split(' ');
const BLOBS = MANIFEST.replace(/manifests\/[^/]+$/, 'blobs/');
const MANIFEST_PARAMS = { headers: { Accept: __ENV.BENCH_ACCEPT } };
const BINARY = { responseType: 'binary' };
const VERIFY = __ENV.BENCH_VERIFY === '1';
const VUS = parseInt(__ENV.BENCH_VUS, 10);
const RATE = parseFloat(__ENV.BENCH_RATE || '0');
const DURATION = `${parseFloat(__ENV.BENCH_SECONDS)}s`;

const mismatches = new Counter('digest_mismatches');

function scenario() {
  if (!(RATE > 0)) {
    return { executor: 'constant-vus', vus: VUS, duration: DURATION };
  }
  // k6 takes a whole number of iterations per timeUnit: a fractional rate is counted per 1000 s.
  const whole = Number.isInteger(RATE);
  return {
    executor: 'constant-arrival-rate',
    rate: whole ? RATE : Math.round(RATE * 1000),
    timeUnit: whole ? '1s' : '1000s',
    duration: DURATION,
    preAllocatedVUs: VUS,
    maxVUs: VUS, // as regload's users: a fixed count, an arrival with none free is dropped
  };
}

export const options = {
  scenarios: { pull: scenario() },
  summaryTrendStats: ['avg', 'p(50)', 'p(99)', 'max'],
};

function blob(desc) {
  const response = http.get(BASE + BLOBS + desc.digest, BINARY);
  const body = response.body;
  if (
    response.status !== 200 ||
    body === null ||
    body.byteLength !== desc.size ||
    `sha256:${crypto.sha256(body, 'hex')}` !== desc.digest
  ) {
    mismatches.add(1);
  }
}

export default function () {
  http.get(BASE + PING);
  const manifest = http.get(BASE + MANIFEST, MANIFEST_PARAMS);
  if (!VERIFY) {
    http.get(BASE + CONFIG);
    http.get(BASE + LAYER);
    return;
  }
  const parsed = manifest.json();
  blob(parsed.config);
  for (const layer of parsed.layers) {
    blob(layer);
  }
}

export function setup() {
  console.log('regload-bench: scenario start');
}

export function teardown() {
  console.log('regload-bench: scenario stop');
}

export function handleSummary(data) {
  return { [__ENV.BENCH_SUMMARY]: JSON.stringify(data) };
}
