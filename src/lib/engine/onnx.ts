// A minimal ONNX writer: a graph builder and the few protobuf messages of onnx.proto it needs
// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto). Field numbers
// are onnx.proto's; repeated numbers are written unpacked, which every protobuf parser accepts.

export const OPSET = 17;
const IR_VERSION = 8;

/** TensorProto.DataType values used here. */
export const DT = { float: 1, uint8: 2, int32: 6, int64: 7, bool: 9 } as const;
export type DType = keyof typeof DT;

/** An attribute value: integers become INT, other numbers FLOAT; `{ float: 1 }` forces FLOAT. */
export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

export interface Initializer { name: string; type: DType; dims: number[]; data: Float32Array | Int32Array | BigInt64Array | Uint8Array }
interface NodeDef { op: string; inputs: string[]; outputs: string[]; attrs: Record<string, AttrValue> }
interface ValueInfo { name: string; type: DType; dims: Array<number | string> }

// ---- protobuf wire format ----

class Writer {
  private chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  length = 0;

  private flush(): void {
    if (this.scratch.length) {
      this.chunks.push(Uint8Array.from(this.scratch));
      this.length += this.scratch.length;
      this.scratch = [];
    }
  }

  private varint(v: bigint | number): void {
    let n = BigInt.asUintN(64, BigInt(v));
    while (n >= 0x80n) { this.scratch.push(Number(n & 0x7fn) | 0x80); n >>= 7n; }
    this.scratch.push(Number(n));
  }

  private tag(field: number, wire: number): void { this.varint((field << 3) | wire); }

  int(field: number, v: number | bigint): this { this.tag(field, 0); this.varint(v); return this; }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.scratch.push(...b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.varint(b.length);
    this.flush();
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  string(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)); }

  message(field: number, m: Writer): this { return this.bytes(field, m.finish()); }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0];
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) { out.set(c, at); at += c.length; }
    return out;
  }
}

function tensorProto(t: Initializer): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  w.int(2, DT[t.type]);
  w.string(8, t.name);
  // raw_data is little-endian, as typed arrays are on every platform Node runs on here.
  w.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return w;
}

function attributeProto(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  if (typeof v === 'string') return w.bytes(4, new TextEncoder().encode(v)).int(20, 3);
  if (typeof v === 'number') return Number.isInteger(v) ? w.int(3, v).int(20, 2) : w.float(2, v).int(20, 1);
  if (Array.isArray(v)) { for (const x of v) w.int(8, x); return w.int(20, 7); }
  if ('float' in v) return w.float(2, v.float).int(20, 1);
  for (const x of v.floats) w.float(7, x);
  return w.int(20, 6);
}

function valueInfoProto(v: ValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.dims) shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, DT[v.type]).message(2, shape);
  return new Writer().string(1, v.name).message(2, new Writer().message(1, tensorType));
}

// ---- graph builder ----

/** Builds one ONNX graph; every op returns its output names, fresh unless named. */
export class Graph {
  readonly nodes: NodeDef[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly initializers: Initializer[] = [];
  private count = 0;
  private consts = new Map<string, string>();
  private renamed = new Map<string, string>();

  fresh(hint: string): string { return `${hint}_${this.count++}`; }

  input(name: string, type: DType, dims: Array<number | string>): string {
    this.inputs.push({ name, type, dims });
    return name;
  }

  /**
   * Marks `value` as a graph output named `name`: the node that makes it is renamed (an Identity
   * would copy it on every run); an input, an initializer or another output gets an Identity.
   */
  output(value: string, name: string, type: DType, dims: Array<number | string>): void {
    value = this.renamed.get(value) ?? value;
    const maker = this.nodes.find((n) => n.outputs.includes(value));
    if (value === name) {
      // already named so
    } else if (maker && !this.outputs.some((o) => o.name === value)) {
      maker.outputs = maker.outputs.map((o) => (o === value ? name : o));
      this.renamed.set(value, name);
      for (const n of this.nodes) n.inputs = n.inputs.map((x) => (x === value ? name : x));
    } else {
      this.nodes.push({ op: 'Identity', inputs: [value], outputs: [name], attrs: {} });
    }
    this.outputs.push({ name, type, dims });
  }

  initializer(name: string, type: DType, dims: number[], data: Initializer['data']): string {
    this.initializers.push({ name, type, dims, data });
    return name;
  }

  /** A constant tensor, shared when the same values are asked for again. */
  constant(type: 'float' | 'int64' | 'int32' | 'bool', dims: number[], values: ArrayLike<number>): string {
    const key = `${type}:${dims.join('x')}:${Array.from(values).join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      const data = type === 'float' ? Float32Array.from(values)
        : type === 'int32' ? Int32Array.from(values)
          : type === 'bool' ? Uint8Array.from(values, (x) => (x ? 1 : 0))
            : BigInt64Array.from(Array.from(values, (x) => BigInt(x)));
      name = this.initializer(this.fresh('const'), type, dims, data);
      this.consts.set(key, name);
    }
    return name;
  }

  scalar(x: number): string { return this.constant('float', [], [x]); }
  ints(values: number[]): string { return this.constant('int64', [values.length], values); }

  /** An op with one output. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.opN(op, inputs, 1, attrs, name ? [name] : undefined)[0];
  }

  /** An op with `n` outputs. */
  opN(op: string, inputs: string[], n: number, attrs: Record<string, AttrValue> = {}, names?: string[]): string[] {
    const outputs = names ?? Array.from({ length: n }, () => this.fresh(op));
    this.nodes.push({ op, inputs, outputs, attrs });
    return outputs;
  }

  /** The serialized ModelProto; `metadata` becomes its metadata_props. */
  toModel(name: string, metadata: Record<string, string> = {}, producer = 'node-red-mnist'): Uint8Array {
    const g = new Writer();
    this.nodes.forEach((n, i) => {
      const w = new Writer();
      for (const x of n.inputs) w.string(1, x);
      for (const y of n.outputs) w.string(2, y);
      w.string(3, `${n.op}_${i}`).string(4, n.op);
      for (const [k, v] of Object.entries(n.attrs)) w.message(5, attributeProto(k, v));
      g.message(1, w);
    });
    g.string(2, name);
    for (const t of this.initializers) g.message(5, tensorProto(t));
    for (const v of this.inputs) g.message(11, valueInfoProto(v));
    for (const v of this.outputs) g.message(12, valueInfoProto(v));
    const model = new Writer()
      .int(1, IR_VERSION)
      .string(2, producer)
      .message(7, g)
      .message(8, new Writer().string(1, '').int(2, OPSET));
    for (const [k, v] of Object.entries(metadata)) model.message(14, new Writer().string(1, k).string(2, v));
    return model.finish();
  }
}
