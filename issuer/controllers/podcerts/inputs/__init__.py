"""What the Pod certificate controller reads: the kubelet's requests and what they were answered."""
