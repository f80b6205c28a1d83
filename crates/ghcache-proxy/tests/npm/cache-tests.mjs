// Runs http-cache-tests (cache-tests.fyi) against a proxy and scores the
// results with the suite's own logic (lib/display.mjs determineTestResult,
// dependencies honoured). Prints one JSON document on stdout.
//
//   node cache-tests.mjs run BASE_URL      run every test through BASE_URL
//   node cache-tests.mjs score FILE.json   score recorded results (e.g. the
//                                          suite's results/squid.json)
import fs from 'fs'
import fetch from 'node-fetch'
import { runTests, getResults } from 'http-cache-tests/client/runner.mjs'
import { determineTestResult } from 'http-cache-tests/lib/display.mjs'
import tests from 'http-cache-tests/tests/index.mjs'
import surrogate from 'http-cache-tests/tests/surrogate-control.mjs'

// tests/index.mjs is the suite; cli.mjs adds the Surrogate-Control tests
// (a CDN header ghcache does not implement) only when asked.
if (process.env.WITH_SURROGATE) tests.push(surrogate)

function score (results) {
  const counts = {}
  const failures = []
  for (const suite of tests) {
    for (const test of suite.tests) {
      if (test.browser_only === true) continue
      const kind = test.kind || 'required'
      const verdict = determineTestResult(tests, test.id, results)[2]
      const key = `${kind} ${verdict}`
      counts[key] = (counts[key] || 0) + 1
      if (!['✅', 'Y', '-'].includes(verdict)) {
        const detail = results[test.id]
        failures.push({ id: test.id, kind, verdict, name: test.name, detail: Array.isArray(detail) ? detail.join(': ') : detail })
      }
    }
  }
  const get = (kind, verdicts) => verdicts.reduce((n, v) => n + (counts[`${kind} ${v}`] || 0), 0)
  return {
    required: { passed: get('required', ['✅']), failed: get('required', ['⛔️', '🔹', '⁉️', '↻']), dependency_failed: get('required', ['⚪️']) },
    optimal: { passed: get('optimal', ['✅']), failed: get('optimal', ['⚠️', '🔹', '⁉️', '↻']), dependency_failed: get('optimal', ['⚪️']) },
    check: { yes: get('check', ['Y']), no: get('check', ['N', '🔹', '⁉️', '↻']), dependency_failed: get('check', ['⚪️']) },
    counts,
    failures
  }
}

const [mode, arg] = process.argv.slice(2)
if (mode === 'score') {
  console.log(JSON.stringify(score(JSON.parse(fs.readFileSync(arg, 'utf8'))), null, 2))
} else if (mode === 'run') {
  // CACHE_TEST_ID=<id>: run that test alone, its exchanges dumped to stderr.
  const only = process.env.CACHE_TEST_ID
  const selected = only
    ? tests.map(suite => ({ ...suite, tests: suite.tests.filter(t => t.id === only).map(t => ({ ...t, dump: true, depends_on: undefined })) }))
    : tests
  const log = console.log
  if (only) console.log = (...args) => console.error(...args)
  await runTests(selected, fetch, false, arg.replace(/\/$/, ''))
  console.log = log
  console.log(JSON.stringify(score(getResults()), null, 2))
} else {
  console.error('usage: node cache-tests.mjs run BASE_URL | score RESULTS.json')
  process.exit(2)
}
