// Resolve hooks for running TensorFlow.js's own op suite (@tensorflow/tfjs-core/dist/tests.js) on
// this backend. The suite is tfjs-core's ES-module build, whose imports have no file extensions
// (it is written for bundlers), and it must share one tfjs-core instance with the backend under
// test. So: extensionless relative imports inside @tensorflow packages get `.js` (or `/index.js`),
// and the bare package names map to the same ES-module builds (not the CommonJS bundles that
// `main` points at), for the backend's imports as for the suite's.
const ESM_ENTRY = {
  '@tensorflow/tfjs-core': '@tensorflow/tfjs-core/dist/index.js',
  '@tensorflow/tfjs-backend-cpu': '@tensorflow/tfjs-backend-cpu/dist/index.js',
};

export async function resolve(specifier, context, next) {
  if (specifier === 'seedrandom') return next(new URL('./seedrandom.mjs', import.meta.url).href, context);
  const mapped = ESM_ENTRY[specifier];
  if (mapped) return next(mapped, context);
  const inTfjs = context.parentURL?.includes('/node_modules/@tensorflow/') ?? false;
  const relative = specifier.startsWith('./') || specifier.startsWith('../');
  const subpath = specifier.startsWith('@tensorflow/') && !(specifier in ESM_ENTRY);
  if ((inTfjs && relative) || subpath) {
    if (/\.[cm]?js$/.test(specifier)) return next(specifier, context);
    try {
      return await next(`${specifier}.js`, context);
    } catch {
      return next(`${specifier}/index.js`, context);
    }
  }
  return next(specifier, context);
}
