/**
 * The student search spaces, by the names search configs use (`space: { name: resnet, ... }`;
 * registry: util/registry.ts). A user's own space is one registerSpace call away and is then served
 * exactly like these.
 */
import { createRegistry } from '../../util/registry.js';
import { mobileNetV2Space } from './mobilenetv2.js';
import { plainCnnSpace } from './plain-cnn.js';
import { resnetSpace } from './resnet.js';
import type { AnySpaceDescriptor, SpaceDescriptor } from './types.js';

const registry = createRegistry<AnySpaceDescriptor>('search space');

/** Adds a space under `d.name`; a name already taken throws. */
export function registerSpace<S, C>(d: SpaceDescriptor<S, C>): void {
  registry.add(d.name, d as AnySpaceDescriptor);
}

registerSpace(resnetSpace);
registerSpace(mobileNetV2Space);
registerSpace(plainCnnSpace);

/** The space called `name`; throws naming the known ones when there is none. */
export function spaceByName(name: string): AnySpaceDescriptor {
  return registry.get(name);
}

/** Names of the registered spaces, sorted. */
export function spaceNames(): string[] {
  return registry.list();
}
