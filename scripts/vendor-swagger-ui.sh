#!/usr/bin/env bash
# Refreshes the Swagger UI files /docs serves (reference_service/pages/static/swagger-ui) from the npm package
# swagger-ui-dist: vendored so the docs page works offline and nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-5.35.0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
dest=reference_service/pages/static/swagger-ui
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "$tmp/package/$f" "$dest/$f"
done
echo "swagger-ui-dist $version (npm), Apache-2.0; refresh with scripts/vendor-swagger-ui.sh" > "$dest/VERSION"
