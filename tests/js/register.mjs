// Import first, then the library with `await import()`: static imports would
// be resolved before the hooks are in place.
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
