// Viewer request of the tunnels' CloudFront distribution (terraform/modules/cloudfront; runtime
// cloudfront-js-2.0). A function URL answers only on its own name, so CloudFront sends it the
// origin's Host (policy AllViewerExceptHostHeader) and forward_stream could not tell which tunnel
// was called. This function hands it the viewer's Host and address in headers of our own,
// overwriting anything a caller sent under those names; forward_stream believes them only with
// the secret origin header CloudFront adds afterwards (httptunnel.edge_origin). A caller's own
// copy of that secret header is dropped here too (CloudFront also overwrites it).
// Tested under Node 20: tests/unit/test_cloudfront_function.py.
function handler(event) {
  var request = event.request;
  var headers = request.headers;
  var host = headers.host ? String(headers.host.value).toLowerCase() : '';
  delete headers['x-tunnel-origin-verify'];
  delete headers['x-tunnel-host'];
  delete headers['x-tunnel-viewer-address'];
  if (host) {
    headers['x-tunnel-host'] = { value: host };
  }
  if (event.viewer && event.viewer.ip) {
    headers['x-tunnel-viewer-address'] = { value: String(event.viewer.ip) };
  }
  return request;
}
