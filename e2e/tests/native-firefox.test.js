// Issue 12, must-show 1 with Firefox ESR: `switchboard send` a 50 MiB file
// to a Firefox page of the app (the download link's SHA-256 matches), the
// page sends a file to `switchboard recv`, chat both ways — with the default
// ICE policy and relay-only (`--relay`, `?relay=1`: relay/relay through this
// server's TURN). The scenario is e2e/lib/native.js's, as for Chromium.
import { test } from 'node:test';
import { MiB, firefox, scenario } from '../lib/native.js';

test('native peer ↔ Firefox: send 50 MiB, recv, chat (default ICE policy)', { skip: firefox.skip }, () =>
  scenario(firefox, { relay: false, size: 50 * MiB }));
test('native peer ↔ Firefox relay-only: send 50 MiB, recv, chat through Switchboard TURN', { skip: firefox.skip }, () =>
  scenario(firefox, { relay: true, size: 50 * MiB }));
