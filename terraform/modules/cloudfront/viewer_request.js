import cf from 'cloudfront';
// Viewer request of the tunnels' CloudFront distribution (terraform/modules/cloudfront; runtime
// cloudfront-js-2.0). A function URL answers only on its own name, so CloudFront sends it the
// origin's Host (policy AllViewerExceptHostHeader) and forward_stream could not tell which tunnel
// was called. This function hands it the viewer's Host and address in headers of our own,
// overwriting anything a caller sent under those names; forward_stream believes them only with
// the secret origin header CloudFront adds afterwards (httptunnel.edge_origin). A caller's own
// copy of that secret header is dropped here too (CloudFront also overwrites it).
//
// A WebSocket handshake (issue 24) goes to the second origin, the caller WebSocket API (its stage
// is that origin's path): a function never sees Upgrade or Connection, so Sec-WebSocket-Key marks
// it. API Gateway refuses any path after the stage, so the request becomes "/" without a query,
// and the app's real target (path and query) travels in x-tunnel-target, which caller_connect
// believes only with the same secret origin header (httptunnel.caller_ws).
// Tested under Node 20: tests/unit/test_cloudfront_function.py.
var CALLER_ORIGIN = 'caller-websocket'; // the origin_id in main.tf

function query(qs) {
  var parts = [];
  for (var name in qs) {
    var values = qs[name].multiValue ? qs[name].multiValue : [qs[name]];
    for (var i = 0; i < values.length; i++) {
      var value = String(values[i].value);
      parts.push(value === '' ? name : name + '=' + value);
    }
  }
  return parts.length ? '?' + parts.join('&') : '';
}

function handler(event) {
  var request = event.request;
  var headers = request.headers;
  var host = headers.host ? String(headers.host.value).toLowerCase() : '';
  delete headers['x-tunnel-origin-verify'];
  delete headers['x-tunnel-host'];
  delete headers['x-tunnel-viewer-address'];
  delete headers['x-tunnel-target'];
  if (host) {
    headers['x-tunnel-host'] = { value: host };
  }
  if (event.viewer && event.viewer.ip) {
    headers['x-tunnel-viewer-address'] = { value: String(event.viewer.ip) };
  }
  if (headers['sec-websocket-key']) {
    headers['x-tunnel-target'] = { value: request.uri + query(request.querystring || {}) };
    request.uri = '/';
    request.querystring = {};
    cf.selectRequestOriginById(CALLER_ORIGIN);
  }
  return request;
}
