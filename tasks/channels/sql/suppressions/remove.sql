DELETE FROM suppressions WHERE channel = :channel AND kind = :kind AND value = :value
