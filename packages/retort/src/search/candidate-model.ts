/**
 * A search space's candidate as an experiment's model, `model: { space: resnet, candidate: {...} }`:
 * what `retort search` writes into best.yaml, so the chosen student goes straight into `retort
 * distill` and `retort compress`. models/configured.ts builds models but sits below search/ in the
 * layers, so this module installs the resolver there when it is loaded (run/experiment.ts,
 * run/load.ts and the public API import it).
 */
import { parseOrThrow } from '../config/errors.js';
import { provideSpaceModels, type SpaceCandidateModel } from '../models/configured.js';
import { RetortError } from '../util/errors.js';
import { spaceByName, spaceNames } from './spaces/registry.js';

/**
 * `candidate` checked against space `space`'s candidate schema (the shape of its genes, not the
 * ranges of a search: a candidate of a widened space builds as well), bound to the space. Errors
 * read `<where>: model.candidate (space resnet): blocks[1]: ...`.
 */
export function resolveSpaceCandidate(space: string, candidate: unknown, where: string): SpaceCandidateModel {
  if (!spaceNames().includes(space))
    throw new RetortError(
      `${where}: model.space: unknown search space '${space}' (known: ${spaceNames().join(', ')})`,
    );
  const d = spaceByName(space);
  const c = parseOrThrow(d.candidate, candidate, `${where}: model.candidate (space ${space})`);
  return {
    key: d.key(c),
    build: (o) =>
      d.build(c, {
        inputShape: o.inputShape,
        numClasses: o.numClasses,
        ...(o.seed === undefined ? {} : { seed: o.seed }),
      }),
    taps: () => d.taps?.(c),
  };
}

provideSpaceModels(resolveSpaceCandidate);
