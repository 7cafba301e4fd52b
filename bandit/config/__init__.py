"""What the product is told: settings, marketing's catalog and templates, the service's
policy file, and the one loader that checks them together (``loader``)."""
