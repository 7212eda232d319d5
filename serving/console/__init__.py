"""The operator console, served by `recsys api` at ``/console``: pages rendered on the server,
charts drawn in the browser from the JSON endpoints under ``/console/api``."""
