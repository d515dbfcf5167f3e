/**
 * The page `retort serve` hands the browser: plain HTML and a script that uses tfjs's and
 * onnxruntime-web's own UMD builds (served from the installed packages, no CDN, no bundler). It
 * classifies test images with both exports of the run — the tfjs model on tfjs's wasm backend and
 * the int8 ONNX file on onnxruntime-web's wasm backend — and an image the user drops, showing the
 * class, the probabilities and the time per image of each runtime. `window.retort.classify(offset,
 * n)` gives the end-to-end test the same numbers.
 */
export const SERVE_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Retort: the student in the browser</title>
<style>
body{font:14px/1.4 Helvetica,Arial,sans-serif;color:#222;margin:20px auto;max-width:1100px;padding:0 14px}
h1{font-size:20px;margin:0 0 4px}.meta{color:#666;font-size:12px;margin-bottom:10px}
#grid{display:grid;grid-template-columns:repeat(8,1fr);gap:8px}
.cell{border:1px solid #ddd;border-radius:4px;padding:4px;text-align:center;font-size:11px;cursor:pointer}
.cell canvas{width:84px;height:84px;image-rendering:pixelated;display:block;margin:0 auto 3px}
.ok{color:#1a7f37}.bad{color:#c62828}
#drop{border:2px dashed #999;border-radius:6px;padding:14px;text-align:center;color:#555;margin:14px 0}
#detail{display:flex;gap:20px;align-items:flex-start;margin-top:10px}
#detail canvas{width:140px;height:140px;image-rendering:pixelated;border:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
.bar{background:#4c78a8;height:9px;display:inline-block}
#status{font-weight:bold}
</style></head><body>
<h1>Retort: the distilled student in the browser</h1>
<div class="meta" id="meta">loading…</div>
<div id="status">loading the models…</div>
<div id="timing"></div>
<div id="drop">Drop an image here (any size; it is scaled to the model's input and converted to its channels)</div>
<div id="grid"></div>
<div id="detail"></div>
<script src="/lib/tf-core.js"></script>
<script src="/lib/tf-layers.js"></script>
<script src="/lib/tf-backend-wasm.js"></script>
<script src="/ort/ort.wasm.min.js"></script>
<script>
(async () => {
  const $ = (id) => document.getElementById(id);
  const meta = await (await fetch('/meta.json')).json();
  const [H, W, C] = meta.shape;
  const size = H * W * C;
  const names = meta.classes || Array.from({ length: meta.numClasses }, (_, i) => String(i));
  $('meta').textContent = meta.run + ': ' + meta.model + ', input ' + H + 'x' + W + 'x' + C + ', ' + meta.numClasses + ' classes';
  tf.wasm.setWasmPaths('/wasm/');
  await tf.setBackend('wasm');
  await tf.ready();
  const tfModel = await tf.loadLayersModel('/model/model.json');
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create('/model.onnx', { executionProviders: ['wasm'] });

  function softmax(row) {
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  }
  function argmax(row) {
    let b = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[b]) b = i;
    return b;
  }
  function rows(flat, n) {
    const k = flat.length / n;
    return Array.from({ length: n }, (_, i) => Array.from(flat.subarray(i * k, (i + 1) * k)));
  }
  async function runTfjs(x, n) {
    const t = tf.tensor4d(x, [n, H, W, C]);
    const y = tfModel.predict(t);
    const out = await y.data();
    tf.dispose([t, y]);
    return rows(out, n);
  }
  async function runOrt(x, n) {
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x, [n, H, W, C]) };
    const out = await session.run(feeds);
    return rows(out[session.outputNames[0]].data, n);
  }
  async function testBatch(offset, n) {
    const buf = await (await fetch('/test?offset=' + offset + '&n=' + n)).arrayBuffer();
    const head = new Int32Array(buf, 0, 1);
    const m = head[0];
    return { n: m, labels: new Int32Array(buf, 4, m), x: new Float32Array(buf, 4 + 4 * m, m * size) };
  }
  async function classify(offset, n) {
    const tfjs = [];
    const onnx = [];
    const labels = [];
    for (let o = offset; o < offset + n; o += 100) {
      const b = await testBatch(o, Math.min(100, offset + n - o));
      (await runTfjs(b.x, b.n)).forEach((r) => tfjs.push(argmax(r)));
      (await runOrt(b.x, b.n)).forEach((r) => onnx.push(argmax(r)));
      labels.push(...b.labels);
    }
    return { tfjs, onnx, labels };
  }
  function draw(canvas, x) {
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(W, H);
    for (let i = 0; i < H * W; i++) {
      for (let c = 0; c < 3; c++) {
        const ch = C === 1 ? 0 : c;
        const v = (x[i * C + ch] * meta.std[ch] + meta.mean[ch]) * 255;
        img.data[i * 4 + c] = Math.max(0, Math.min(255, v));
      }
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  async function timed(run, x, reps) {
    await run(x, 1);
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await run(x, 1);
    return (performance.now() - t0) / reps;
  }
  async function show(x, label) {
    const [a] = await runTfjs(x, 1);
    const [b] = await runOrt(x, 1);
    const pa = softmax(a);
    const pb = softmax(b);
    const msA = await timed(runTfjs, x, 5);
    const msB = await timed(runOrt, x, 5);
    const d = $('detail');
    d.innerHTML = '';
    const cv = document.createElement('canvas');
    draw(cv, x);
    d.appendChild(cv);
    const t = document.createElement('table');
    t.innerHTML = '<tr><th>class</th><th>tfjs (wasm) ' + msA.toFixed(2) + ' ms/image</th><th>int8 ONNX (onnxruntime-web) ' + msB.toFixed(2) + ' ms/image</th></tr>' +
      names.map((nm, i) => '<tr><td>' + (i === argmax(pa) ? '<b>' + nm + '</b>' : nm) + (label === i ? ' (true)' : '') + '</td><td><span class="bar" style="width:' + (100 * pa[i]).toFixed(0) + 'px"></span> ' + (100 * pa[i]).toFixed(1) + '%</td><td><span class="bar" style="width:' + (100 * pb[i]).toFixed(0) + 'px"></span> ' + (100 * pb[i]).toFixed(1) + '%</td></tr>').join('');
    d.appendChild(t);
  }
  const first = await testBatch(0, 24);
  const tfRows = await runTfjs(first.x, first.n);
  const ortRows = await runOrt(first.x, first.n);
  const grid = $('grid');
  for (let i = 0; i < first.n; i++) {
    const x = first.x.slice(i * size, (i + 1) * size);
    const cell = document.createElement('div');
    cell.className = 'cell';
    const cv = document.createElement('canvas');
    draw(cv, x);
    cell.appendChild(cv);
    const p1 = argmax(tfRows[i]);
    const p2 = argmax(ortRows[i]);
    const cls = (p) => (p === first.labels[i] ? 'ok' : 'bad');
    cell.insertAdjacentHTML('beforeend', 'true: ' + names[first.labels[i]] + '<br><span class="' + cls(p1) + '">tfjs: ' + names[p1] + '</span><br><span class="' + cls(p2) + '">int8: ' + names[p2] + '</span>');
    cell.onclick = () => show(x, first.labels[i]);
    grid.appendChild(cell);
  }
  const one = first.x.slice(0, size);
  const msT = await timed(runTfjs, one, 20);
  const msO = await timed(runOrt, one, 20);
  $('timing').textContent = 'per image, batch 1: tfjs (wasm backend) ' + msT.toFixed(2) + ' ms; int8 ONNX (onnxruntime-web, wasm, 1 thread) ' + msO.toFixed(2) + ' ms';
  await show(one, first.labels[0]);
  const drop = $('drop');
  drop.ondragover = (e) => e.preventDefault();
  drop.ondrop = async (e) => {
    e.preventDefault();
    const file = e.dataTransfer.files[0];
    if (!file) return;
    const bmp = await createImageBitmap(file);
    const cv = document.createElement('canvas');
    cv.width = W;
    cv.height = H;
    const ctx = cv.getContext('2d');
    ctx.drawImage(bmp, 0, 0, W, H);
    const px = ctx.getImageData(0, 0, W, H).data;
    const x = new Float32Array(size);
    let mean = 0;
    for (let i = 0; i < H * W; i++) mean += (px[i * 4] + px[i * 4 + 1] + px[i * 4 + 2]) / 765;
    // Fashion-MNIST-like data shows a light object on black: a photo on a light background is inverted.
    const invert = meta.invertLight && mean / (H * W) > 0.5;
    for (let i = 0; i < H * W; i++) {
      for (let c = 0; c < C; c++) {
        let v = C === 1 ? (px[i * 4] + px[i * 4 + 1] + px[i * 4 + 2]) / 765 : px[i * 4 + c] / 255;
        if (invert) v = 1 - v;
        x[i * C + c] = (v - meta.mean[c]) / meta.std[c];
      }
    }
    await show(x, -1);
  };
  window.retort = { classify, ready: true };
  $('status').textContent = 'ready: tfjs ' + tf.version_core + ' on ' + tf.getBackend() + ', onnxruntime-web';
})().catch((e) => {
  document.getElementById('status').textContent = 'error: ' + e.message;
  window.retort = { error: String(e && e.stack || e) };
});
</script>
</body></html>
`;
