// Module hooks: the library's socket.io import resolves to the fake.
const FAKE = new URL("./fake-socket.io.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.endsWith("/vendor/socket.io.esm.min.js")) return { url: FAKE, shortCircuit: true };
  return next(specifier, context);
}
