"""marshmallow schemas: what goes in and comes out of the API, shared by every version."""
