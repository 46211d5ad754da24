SELECT send_key, held_at, reason, figures, released_at, released_by FROM send_holds WHERE send_key = :send_key
