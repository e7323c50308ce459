"""The JSON API over the documents (README "The API")."""
