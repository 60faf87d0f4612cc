// The data-plane benchmark's backend: a minimal node HTTP server, fast enough
// that the proxy in front of it, not the backend, sets the request rate.
//
//   node benchmarks/backend.js NAME=PORT [NAME=PORT ...]
//
// Each port answers every request with its NAME as the body, so a probe can
// tell which route served it (a user's server or the Hub).
"use strict";
const http = require("http");

function serve(name, port) {
  const body = Buffer.from(name);
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": body.length });
    res.end(body);
  });
  // keep-alive longer than the proxies' idle pools, so wrk never sees a reset
  server.keepAliveTimeout = 120000;
  server.listen(port, "127.0.0.1", () => console.log(`${name} listening on ${port}`));
}

const specs = process.argv.slice(2);
if (specs.length === 0) {
  console.error("usage: node backend.js NAME=PORT [NAME=PORT ...]");
  process.exit(2);
}
for (const spec of specs) {
  const [name, port] = spec.split("=");
  serve(name, Number(port));
}
