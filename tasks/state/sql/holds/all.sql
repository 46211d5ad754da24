SELECT send_key, held_at, reason, figures, released_at, released_by FROM send_holds ORDER BY held_at, send_key
