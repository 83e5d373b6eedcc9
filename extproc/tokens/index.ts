export { ENCODINGS, countTokensSync, preloadEncoding, type EncodingName } from "./count.js";
