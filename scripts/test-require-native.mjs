// Preloaded into every test process by scripts/test.sh: a test file that imported the native
// backend while its addon could not load ran "on native" on the JS kernels; the file fails here
// instead of passing quietly (RETORT_QUIET=1 hides the backend's own one-line notice). Runs on
// purpose without the addon (RETORT_NATIVE=0) are left alone.
process.on('exit', () => {
  const status = globalThis[Symbol.for('retort.native.status')];
  if (status && !status.available && process.env.RETORT_NATIVE !== '0') {
    process.stderr.write(`test process ran without the native addon: ${status.reason}\n`);
    process.exitCode = 1;
  }
});
