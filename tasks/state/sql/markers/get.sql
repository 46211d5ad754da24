SELECT payload FROM task_markers WHERE marker_id = :marker_id
