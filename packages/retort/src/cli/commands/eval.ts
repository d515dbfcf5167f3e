/** `retort eval <run folder>`: test accuracy of a run's model.ckpt (or of --checkpoint with --model). */
import 'retort-kd-native';
import { modelLabel } from '../../models/configured.js';
import { loadRun } from '../../run/load.js';
import { evaluate } from '../../train/trainer.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const options: readonly OptionSpec[] = [{ name: 'help', kind: 'flag', help: 'show this help' }];

export const evalCommand: Command = {
  name: 'eval',
  summary: SUMMARIES.eval,
  async run(argv) {
    const pos: string[] = [];
    const o = parseOptions(argv, options, 'eval', pos);
    if (o['help'] === true || pos.length !== 1) {
      console.log(`usage: retort eval <run folder>\n\n${helpText('eval', this.summary, options)}`);
      if (pos.length !== 1 && o['help'] !== true) throw new Error('retort eval: give one run folder');
      return;
    }
    const dir = pos[0]!;
    const { exp, data, model } = await loadRun(dir, 'eval');
    const r = await evaluate(model, data.test);
    console.log(
      JSON.stringify({ run: dir, model: modelLabel(exp.model), params: model.countParams(), ...r }),
    );
  },
};
