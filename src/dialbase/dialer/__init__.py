"""The dialer side: leasing leads, reporting outcomes, campaign statistics (``/v1``)."""
