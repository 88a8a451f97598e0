/** Types of build.mjs, for the TypeScript tests. */
export declare const here: string;
export declare const distDir: string;
export declare function buildPlayground(options?: { minify?: boolean }): Promise<{ bytes: number; inputs: string[] }>;
