#!/bin/sh
# Regenerates docs/screenshots: every page of `lanmeter demo` in real headless Chromium at
# 1280 px and 390 px, light and dark (the test docs_screenshots_of_every_page), and the
# first-run wizard as a new household walks it (wizard_after_setup_…), then copies them next
# to the README. Needs the Debian packages chromium and chromium-driver.
set -eu
cd "$(dirname "$0")/.."
cargo test --test it docs_screenshots_of_every_page
cargo test --test it wizard_after_setup_tells_where_sets_the_plan_and_mails_a_test
mkdir -p docs/screenshots
cp target/screenshots/docs/*.png docs/screenshots/
ls docs/screenshots
