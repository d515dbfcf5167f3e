/**
 * A restricted reader of the pickle in a `torch.save(model.state_dict())` file: the opcodes of
 * protocols 2 to 4 that such files use, and only the globals a state dict needs (OrderedDict, the
 * tensor rebuild functions, the storage types). Anything else — which in a real unpickler would
 * mean running code named by the file — is refused with the name of the global, like PyTorch's own
 * `torch.load(weights_only=True)`.
 */
import { RetortError } from '../../util/errors.js';

/** A tensor as the pickle describes it: a view into a storage kept in the archive. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}

export interface StorageRef {
  kind: 'storage';
  /** PyTorch storage type: FloatStorage, LongStorage, ... */
  type: string;
  /** Entry name under data/ in the archive. */
  key: string;
  numel: number;
}

class Tuple {
  constructor(readonly items: unknown[]) {}
}
class Global {
  constructor(readonly name: string) {}
}
class Dict {
  readonly map = new Map<unknown, unknown>();
}

const STORAGES = new Set([
  'FloatStorage',
  'DoubleStorage',
  'HalfStorage',
  'BFloat16Storage',
  'LongStorage',
  'IntStorage',
  'ShortStorage',
  'CharStorage',
  'ByteStorage',
  'BoolStorage',
]);
const ALLOWED = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  ...[...STORAGES].map((s) => `torch.${s}`),
]);

/** The state dict (name -> tensor view) a torch.save pickle holds. */
export function readStateDictPickle(bytes: Uint8Array, file: string): Map<string, TensorRef> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string, at: number) =>
    new RetortError(`${file}: data.pkl at byte ${at}: ${why}`, { file });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let p = 0;
  const need = (n: number) => {
    if (p + n > bytes.length) throw fail('truncated', p);
  };
  const u8 = () => {
    need(1);
    return bytes[p++]!;
  };
  const u16 = () => {
    need(2);
    const x = v.getUint16(p, true);
    p += 2;
    return x;
  };
  const u32 = () => {
    need(4);
    const x = v.getUint32(p, true);
    p += 4;
    return x;
  };
  const utf8 = (b: Uint8Array) => {
    try {
      return decoder.decode(b);
    } catch {
      throw fail('a string is not UTF-8', p);
    }
  };
  const text = (n: number) => {
    need(n);
    const s = utf8(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw fail('unterminated line', p);
    const s = utf8(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw fail('stack underflow', p);
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw fail('no mark', p);
    return stack.splice(m);
  };
  const global = (module: string, name: string, at: number) => {
    const full = `${module}.${name}`;
    if (!ALLOWED.has(full))
      throw fail(
        `refers to ${full}, which a state dict does not contain; only tensors are read from PyTorch files`,
        at,
      );
    return new Global(full);
  };
  const call = (fn: unknown, args: unknown, at: number): unknown => {
    if (!(fn instanceof Global) || !(args instanceof Tuple))
      throw fail('REDUCE on something that is not a global', at);
    const a = args.items;
    switch (fn.name) {
      case 'collections.OrderedDict':
        return new Dict();
      case 'torch._utils._rebuild_parameter':
        return a[0];
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = a;
        const ints = (t: unknown) =>
          t instanceof Tuple && t.items.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)
            ? (t.items as number[])
            : null;
        const sz = ints(size);
        const st = ints(stride);
        if (
          (storage as StorageRef)?.kind !== 'storage' ||
          !Number.isSafeInteger(offset) ||
          !sz ||
          !st ||
          sz.length !== st.length
        )
          throw fail('malformed tensor record', at);
        const ref: TensorRef = {
          kind: 'tensor',
          storage: storage as StorageRef,
          offset: offset as number,
          size: sz,
          stride: st,
        };
        return ref;
      }
      default:
        throw fail(`cannot call ${fn.name}`, at);
    }
  };
  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        {
          const top = pop();
          if (!(top instanceof Dict))
            throw fail('the pickle does not hold a dict (is this a state_dict?)', at);
          const out = new Map<string, TensorRef>();
          for (const [k, val] of top.map) {
            if (typeof k !== 'string') throw fail('a state dict key is not a string', at);
            if ((val as TensorRef)?.kind !== 'tensor')
              throw fail(
                `'${k}' is not a tensor (save model.state_dict(), not a whole model or a training checkpoint)`,
                at,
              );
            out.set(k, val as TensorRef);
          }
          return out;
        }
      case 0x63: // GLOBAL 'module\nname\n'
        stack.push(global(line(), line(), at));
        break;
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          throw fail('STACK_GLOBAL of non-strings', at);
        stack.push(global(module, name, at));
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: {
        // BINUNICODE8
        need(8);
        const n = Number(v.getBigUint64(p, true));
        p += 8;
        stack.push(text(n));
        break;
      }
      case 0x42: // BINBYTES
      case 0x43: {
        // SHORT_BINBYTES
        const n = op === 0x42 ? u32() : u8();
        need(n);
        stack.push(bytes.subarray(p, p + n));
        p += n;
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Dict());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new Tuple([]));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x74: // TUPLE
        stack.push(new Tuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new Tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new Tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new Tuple([pop(), b, c]));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), stack.at(-1));
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), stack.at(-1));
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack.at(-1));
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw fail(`memo ${k} is empty`, at);
        stack.push(memo.get(k));
        break;
      }
      case 0x4a: // BININT
        need(4);
        stack.push(v.getInt32(p, true));
        p += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: {
        // LONG1
        const n = u8();
        need(n);
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[p + i]!);
        if (n > 0 && bytes[p + n - 1]! & 0x80) x -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number.isSafeInteger(Number(x)) ? Number(x) : x);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(v.getFloat64(p, false));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args, at));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        stack.push(call(pop(), args, at));
        break;
      }
      case 0x62: // BUILD: OrderedDict's state (its _metadata) is not needed
        pop();
        break;
      case 0x73: {
        // SETITEM
        const val = pop();
        const key = pop();
        const d = stack.at(-1);
        if (!(d instanceof Dict)) throw fail('SETITEM on a non-dict', at);
        d.map.set(key, val);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = stack.at(-1);
        if (!(d instanceof Dict) || items.length % 2 !== 0) throw fail('SETITEMS on a non-dict', at);
        for (let i = 0; i < items.length; i += 2) d.map.set(items[i], items[i + 1]);
        break;
      }
      case 0x61: {
        // APPEND
        const x = pop();
        const l = stack.at(-1);
        if (!Array.isArray(l)) throw fail('APPEND on a non-list', at);
        l.push(x);
        break;
      }
      case 0x65: {
        // APPENDS
        const xs = popMark();
        const l = stack.at(-1);
        if (!Array.isArray(l)) throw fail('APPENDS on a non-list', at);
        for (const x of xs) l.push(x);
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', <storage type>, key, location, numel)
        const pid = pop();
        const [tag, type, key, , numel] = pid instanceof Tuple ? pid.items : [];
        const name = type instanceof Global ? type.name.slice('torch.'.length) : '';
        if (
          tag !== 'storage' ||
          !STORAGES.has(name) ||
          typeof key !== 'string' ||
          !Number.isSafeInteger(numel)
        )
          throw fail('malformed storage reference', at);
        stack.push({ kind: 'storage', type: name, key, numel: numel as number } satisfies StorageRef);
        break;
      }
      default:
        throw fail(`pickle opcode 0x${op.toString(16)} is not read`, at);
    }
  }
}
