/** The distillation losses, by the names experiment files use (registry: util/registry.ts). */

import { createRegistry } from '../util/registry.js';
import { ab } from './losses/ab.js';
import { adversarial } from './losses/adversarial.js';
import { at } from './losses/at.js';
import { cc } from './losses/cc.js';
import { ce } from './losses/ce.js';
import { cosine } from './losses/cosine.js';
import { crd } from './losses/crd.js';
import { dkd } from './losses/dkd.js';
import { fitnet } from './losses/fitnet.js';
import { fsp } from './losses/fsp.js';
import { ft } from './losses/ft.js';
import { irg } from './losses/irg.js';
import { kd } from './losses/kd.js';
import { kdsvd } from './losses/kdsvd.js';
import { logitMse } from './losses/logit-mse.js';
import { nst } from './losses/nst.js';
import { ofd } from './losses/ofd.js';
import { pkt } from './losses/pkt.js';
import { regressor } from './losses/regressor.js';
import { reviewkd } from './losses/reviewkd.js';
import { rkd } from './losses/rkd.js';
import { semckd } from './losses/semckd.js';
import { sp } from './losses/sp.js';
import { tfKd } from './losses/tf-kd.js';
import type { AnyLossDescriptor } from './losses/types.js';
import { vid } from './losses/vid.js';

export { createRegistry, type Registry } from '../util/registry.js';

/** Distillation losses by the name experiment files use (`losses: [{ name: dkd, beta: 8 }]`). */
export const lossRegistry = createRegistry<AnyLossDescriptor>('distillation loss')
  .add(ce.name, ce)
  .add(kd.name, kd)
  .add(dkd.name, dkd)
  .add(cosine.name, cosine)
  .add(regressor.name, regressor)
  .add(at.name, at)
  .add(nst.name, nst)
  .add(sp.name, sp)
  .add(pkt.name, pkt)
  .add(rkd.name, rkd)
  .add(cc.name, cc)
  .add(fitnet.name, fitnet)
  .add(vid.name, vid)
  .add(crd.name, crd)
  .add(fsp.name, fsp)
  .add(ab.name, ab)
  .add(ofd.name, ofd)
  .add(ft.name, ft)
  .add(kdsvd.name, kdsvd)
  .add(tfKd.name, tfKd)
  .add(adversarial.name, adversarial)
  .add(logitMse.name, logitMse)
  .add(irg.name, irg)
  .add(reviewkd.name, reviewkd)
  .add(semckd.name, semckd);

/**
 * Adds a user's own distillation loss under `d.name`, usable in `losses: [{ name }]` like the
 * built-in ones; a name already taken throws.
 */
export function registerLoss(d: AnyLossDescriptor): void {
  lossRegistry.add(d.name, d);
}
