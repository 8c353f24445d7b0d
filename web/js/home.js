// Home page: creates an unguessable room id (128 random bits) or joins one
// from a pasted link or code.

const $ = (id) => document.getElementById(id);

/** 22 characters of base64url from 16 random bytes. */
export function newRoomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function go(room, token = null) {
  const relay = $('relay-only').checked ? '?relay=1' : '';
  // An invite link's token stays in the fragment (never sent to the server).
  const fragment = token ? `#t=${token}` : '';
  location.href = `/r/${encodeURIComponent(room)}${relay}${fragment}`;
}

$('new-room').onclick = () => go(newRoomId());
$('join-code').onsubmit = (e) => {
  e.preventDefault();
  const raw = $('code').value.trim();
  const m = raw.match(/\/r\/([A-Za-z0-9_-]{1,64})/) ?? raw.match(/^([A-Za-z0-9_-]{1,64})$/);
  if (!m) {
    $('home-error').textContent = 'That does not look like a room link or code.';
    return;
  }
  go(m[1], raw.match(/#(?:.*&)?t=([A-Za-z0-9_.-]+)/)?.[1] ?? null);
};
