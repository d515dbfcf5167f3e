/** The distillation schemes, by the names experiment files use (`scheme: { name: dml }`). */
import { createRegistry } from '../util/registry.js';
import { bornAgain } from './schemes/born-again.js';
import { byot } from './schemes/byot.js';
import { csKd } from './schemes/cs-kd.js';
import { dafl } from './schemes/dafl.js';
import { dataFree } from './schemes/data-free.js';
import { dml } from './schemes/dml.js';
import { multiTeacher } from './schemes/multi-teacher.js';
import { offline } from './schemes/offline.js';
import { takd } from './schemes/takd.js';
import type { AnySchemeDescriptor } from './schemes/types.js';

export const schemeRegistry = createRegistry<AnySchemeDescriptor>('distillation scheme')
  .add(offline.name, offline as AnySchemeDescriptor)
  .add(dml.name, dml as AnySchemeDescriptor)
  .add(bornAgain.name, bornAgain as AnySchemeDescriptor)
  .add(byot.name, byot as AnySchemeDescriptor)
  .add(multiTeacher.name, multiTeacher as AnySchemeDescriptor)
  .add(dataFree.name, dataFree as AnySchemeDescriptor)
  .add(dafl.name, dafl as AnySchemeDescriptor)
  .add(takd.name, takd as AnySchemeDescriptor)
  .add(csKd.name, csKd as AnySchemeDescriptor);

/** Adds a user's own scheme under `d.name`, usable as `scheme: { name }`; a name already taken throws. */
export function registerScheme<C>(d: import('./schemes/types.js').SchemeDescriptor<C>): void {
  schemeRegistry.add(d.name, d as AnySchemeDescriptor);
}
