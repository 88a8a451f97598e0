// The few ndarray-ops functions we use (the package ships no types).
declare module "ndarray-ops" {
  import type { NdArray } from "ndarray";
  const ops: {
    assign(dest: NdArray<any>, src: NdArray<any>): NdArray<any>;
    assigns(dest: NdArray<any>, v: number): NdArray<any>;
    addeq(dest: NdArray<any>, src: NdArray<any>): NdArray<any>;
    sub(dest: NdArray<any>, a: NdArray<any>, b: NdArray<any>): NdArray<any>;
    sup(a: NdArray<any>): number;
    inf(a: NdArray<any>): number;
    norm2(a: NdArray<any>): number;
    equals(a: NdArray<any>, b: NdArray<any>): boolean;
  };
  export default ops;
}
