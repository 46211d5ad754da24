-- a marker and its children (ids starting with :prefix, the marker's id and a /) (substr, not LIKE: an id may hold _ or %)
DELETE FROM task_markers WHERE marker_id = :marker_id OR substr(marker_id, 1, :prefix_chars) = :prefix
