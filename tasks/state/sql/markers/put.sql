INSERT INTO task_markers (marker_id, payload) VALUES (:marker_id, :payload)
ON CONFLICT (marker_id) DO UPDATE SET payload = excluded.payload, inserted_at = now()
