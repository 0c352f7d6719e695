"""The web dashboard at `/`: sign in with an API key, see and drive that key's sandboxes.

The page is a small server-rendered shell plus static ES modules; the scripts
call the same JSON API (`/api`, `/toolbox`) as every other client, authorised
by a session cookie that maps, on the server, to the key's hash (`sessions`).
"""
