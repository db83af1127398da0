#!/bin/sh
# Regenerates docs/screenshots: every page of `lanmeter demo` in real headless Chromium at
# 1280 px and 390 px, light and dark (the test docs_screenshots_of_every_page), then copies
# them next to the README. Needs the Debian packages chromium and chromium-driver.
set -eu
cd "$(dirname "$0")/.."
cargo test --test it docs_screenshots_of_every_page
mkdir -p docs/screenshots
cp target/screenshots/docs/*.png docs/screenshots/
ls docs/screenshots
