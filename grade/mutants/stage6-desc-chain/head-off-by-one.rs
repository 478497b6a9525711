// mutant: Off by one in the head check: a head equal to the queue size is accepted and read from past the end of the table.
    /// Follows the chain that starts at descriptor `head` and checks every step: indices inside
    /// their table, no descriptor visited twice, buffers inside guest RAM, readable buffers
    /// before writable ones, at most one level of indirect table, and bounded length.
    pub(super) fn walk_chain(&self, mem: &GuestMemory, head: u16) -> Result<DescriptorChain, QueueError> {
        if head > self.size {
            return Err(QueueError::HeadOutOfRange { head, size: self.size });
        }
        // "A driver MUST NOT create a descriptor chain longer than the Queue Size of the
        // device": QueueNumMax, which also covers chains that continue in an indirect table.
        let limit = self.max_size;
        let mut descriptors: Vec<Descriptor> = Vec::new();
        let mut total_bytes = 0u64;
        // The table we are walking: the queue's own, or (at most once) an indirect one.
        let (mut table, mut table_len) = (self.desc_table, self.size);
        let mut in_indirect = false;
        let mut visited = Visited::default();
        let mut index = head;
        loop {
            // A table of n descriptors cannot hold a chain of more than n without a loop.
            if !visited.insert(index) {
                return Err(QueueError::DescriptorLoop { head, index });
            }
            let desc = read_descriptor(mem, table, index)?;

            if desc.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if !self.indirect_desc {
                    return Err(QueueError::IndirectNotNegotiated { head });
                }
                if in_indirect {
                    return Err(QueueError::NestedIndirect { head });
                }
                if desc.flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(QueueError::IndirectWithNext { head });
                }
                let entries = u64::from(desc.len) / DESCRIPTOR_SIZE;
                let bad_len = u64::from(desc.len) % DESCRIPTOR_SIZE != 0;
                if bad_len || entries == 0 || entries > u64::from(MAX_QUEUE_SIZE) {
                    return Err(QueueError::BadIndirectLength { head, len: desc.len, max: MAX_QUEUE_SIZE });
                }
                let addr = GuestAddress(desc.addr);
                if !mem.contains_range(addr, desc.len as usize) {
                    return Err(QueueError::IndirectTableOutsideRam { head, addr, len: desc.len });
                }
                // The write flag of this descriptor means nothing ("MUST ignore"): the chain
                // goes on at entry 0 of the table, and this descriptor is not a buffer.
                (table, table_len) = (addr, entries as u16);
                in_indirect = true;
                visited = Visited::default();
                index = 0;
                continue;
            }

            let buffer = Descriptor {
                addr: GuestAddress(desc.addr),
                len: desc.len,
                write_only: desc.flags & VIRTQ_DESC_F_WRITE != 0,
            };
            if !mem.contains_range(buffer.addr, buffer.len as usize) {
                return Err(QueueError::BufferOutsideRam { head, addr: buffer.addr, len: buffer.len });
            }
            if !buffer.write_only && descriptors.last().is_some_and(|d| d.write_only) {
                return Err(QueueError::ReadableAfterWritable { head });
            }
            total_bytes += u64::from(buffer.len);
            if total_bytes > MAX_CHAIN_BYTES {
                return Err(QueueError::ChainTooLarge { head });
            }
            if descriptors.len() >= usize::from(limit) {
                return Err(QueueError::ChainTooLong { head, limit });
            }
            descriptors.push(buffer);

            if desc.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(DescriptorChain { head, descriptors });
            }
            if desc.next >= table_len {
                return Err(QueueError::NextOutOfRange { head, next: desc.next, table_len });
            }
            index = desc.next;
        }
    }
