// A new user's first script, run by pack-install.test.ts in a fresh project where the packed
// tarballs were installed: train a teacher, distil a student from it, all through the public API.
import {
  distill,
  evaluate,
  loadRun,
  nativeAvailable,
  nativeIsa,
  nativeUnavailableReason,
  train,
} from 'retort-kd';

const runsRoot = process.argv[2] ?? 'runs';
if (!nativeAvailable) throw new Error(`native backend not loaded: ${nativeUnavailableReason}`);
console.log(`native backend: addon ${nativeIsa}`);

// 512 Fashion-MNIST training images from Debian's dataset-fashion-mnist, 512 test images.
const data = { dataset: 'fashion-mnist', trainLimit: 512, testLimit: 512, batchSize: 64 };
const optimizer = { name: 'adam', lr: 0.002, weightDecay: 0 };
const log = (line) => console.log(`  ${line}`);

const teacher = await train(
  { name: 'teacher', data, model: { name: 'deepnn' }, epochs: 4, optimizer },
  { runsRoot, log },
);
console.log(`teacher deepnn: ${teacher.params} params, test top-1 ${teacher.testTop1.toFixed(1)}%`);

const student = await distill(
  {
    name: 'student',
    data,
    model: { name: 'lightnn' },
    teacher: { model: { name: 'deepnn' }, run: teacher.runDir },
    losses: [
      { name: 'ce', weight: 0.25 },
      { name: 'kd', weight: 0.75, T: 4 },
    ],
    epochs: 3,
    optimizer,
  },
  { runsRoot, log },
);
console.log(`student lightnn: ${student.params} params, test top-1 ${student.testTop1.toFixed(1)}%`);

// A finished run folder loads back as a model with its data, as `retort eval` does.
const { model, data: loaded } = await loadRun(student.runDir);
const again = await evaluate(model, loaded.test);
console.log(`reloaded student: test top-1 ${again.top1.toFixed(1)}%`);
if (Math.abs(again.top1 - student.testTop1) > 1e-9) throw new Error('reloaded student disagrees');
