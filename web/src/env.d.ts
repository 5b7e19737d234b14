// What this package reads from import.meta.env. Declared the way Vite's vite/client
// declares it (so the two merge), but at run time it may be absent: the client reads
// it with `?.`.
interface ImportMetaEnv {
  readonly VITE_WS_URL?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
