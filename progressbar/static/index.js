// progressbar's browser client: import what you need from here.
//
//   import { ProgressClient, ProgressBar } from "/progressbar/static/index.js";
//
// Its modules import socket.io-client from ./vendor/, served beside them.

export { Connection, errorMessage } from "./connection.js";
export { ProgressClient } from "./client.js";
export { ProgressBar, setBarValue } from "./bar.js";
export { TERMINAL_STATES, barValue, isCancelling, isNumber, isTerminal } from "./snapshot.js";
export * as format from "./format.js";
