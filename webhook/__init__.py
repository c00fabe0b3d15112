"""The validating admission webhook: bad Pkis fail at ``kubectl apply`` with the fix."""
