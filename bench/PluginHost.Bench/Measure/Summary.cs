namespace PluginHost.Bench.Measure;

/// <summary>The median and spread of a set of samples (ns per packet, or ms).</summary>
public sealed record Summary(double Median, double P25, double P75, double Min, double Max, IReadOnlyList<double> Samples)
{
    public static Summary Of(IReadOnlyList<double> samples)
    {
        if (samples.Count == 0)
            throw new ArgumentException("summarise samples: none taken", nameof(samples));
        var sorted = samples.Order().ToArray();
        return new Summary(Quantile(sorted, 0.5), Quantile(sorted, 0.25), Quantile(sorted, 0.75), sorted[0], sorted[^1], samples.ToList());
    }

    /// <summary>The nearest-rank percentile of the samples (p99 of 20 samples is the slowest).</summary>
    public double NearestRank(int percent)
    {
        var sorted = Samples.Order().ToList();
        return sorted[Math.Clamp((int)Math.Ceiling(sorted.Count * percent / 100.0) - 1, 0, sorted.Count - 1)];
    }

    /// <summary>Half the interquartile range: the "±" shown beside a median.</summary>
    public double HalfSpread => (P75 - P25) / 2;

    // Linear interpolation between closest ranks.
    private static double Quantile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int low = (int)Math.Floor(position);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}
