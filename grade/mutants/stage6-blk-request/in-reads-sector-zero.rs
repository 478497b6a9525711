// mutant: Reads from the start of the disk for every IN request, ignoring the header's sector.
    /// Carries out one request whose header is `header`: `readable` is the rest of the
    /// device-readable bytes, `writable` the device-writable bytes before the status byte.
    fn execute(
        &mut self,
        header: RequestHeader,
        readable: &mut BufferCursor,
        writable: &mut BufferCursor,
    ) -> Result<(), VirtioBlockError> {
        match header.request_type {
            VIRTIO_BLK_T_IN => self.read_sectors(0, writable),
            VIRTIO_BLK_T_OUT => self.write_sectors(header.sector, readable),
            VIRTIO_BLK_T_FLUSH => self.flush(),
            VIRTIO_BLK_T_GET_ID => {
                // At most 20 bytes, fewer if the driver gave less room.
                writable.write(&self.serial)?;
                Ok(())
            }
            // DISCARD, WRITE_ZEROES, GET_LIFETIME, ... belong to features we do not offer.
            other => Err(RequestError::Unsupported(other).into()),
        }
    }
