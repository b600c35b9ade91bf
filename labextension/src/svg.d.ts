// SVG files imported from TypeScript are their text (the builder's asset/source rule).
declare module '*.svg' {
  const svgstr: string;
  export default svgstr;
}
